"""The load generator's words: the plan at the start, a line per report interval, the summary."""

from __future__ import annotations

import logging
from typing import Any

from ..settings import LoadgenSettings
from .measure import Kind, Latencies, Tally

log = logging.getLogger("synergychat.loadgen")


def log_plan(settings: LoadgenSettings) -> None:
    length = (
        f"for {settings.loadgen_duration_seconds:g} s"
        if settings.loadgen_duration_seconds
        else "until stopped"
    )
    log.info(
        "loadgen: %d simulated people against %s %s; each sends a message every %.0f s on average "
        "(about %.1f messages/s in all), joining %g per second, staying %s; metrics on :%d/metrics",
        settings.loadgen_users,
        settings.loadgen_target_url,
        length,
        settings.loadgen_post_interval_seconds,
        settings.loadgen_users / settings.loadgen_post_interval_seconds,
        settings.loadgen_spawn_rate,
        f"{settings.loadgen_visit_seconds:g} s on average"
        if settings.loadgen_visit_seconds
        else "for the whole run",
        settings.loadgen_port,
    )


def window_line(window: Tally, elapsed: float, people: int, open_streams: int) -> str:
    def percentiles(latencies: Latencies) -> str:
        p50, p95, p99 = (latencies.quantile(q) for q in (0.5, 0.95, 0.99))
        if p50 is None or p95 is None or p99 is None:
            return "-"  # nothing measured in this window
        return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"

    sent = window.latency[Kind.POST]
    line = (
        f"after {elapsed:.0f} s: {people} people, "
        f"{open_streams} streams open | "
        f"{sent.count} messages sent ({percentiles(sent)}) | "
        f"{window.delivery.count} deliveries ({percentiles(window.delivery)}), {window.missed} missed | "
        f"{window.latency[Kind.HISTORY].count} history pages, "
        f"{window.latency[Kind.STATS].count} /stats | "
        f"{window.failed} of {sum(window.requests.values())} requests failed ({window.error_rate:.1%})"
    )
    if window.failures:
        top = ", ".join(f"{kind} {reason} x{n}" for (kind, reason), n in window.failures.most_common(4))
        line += f": {top}"
    return line


def log_summary(summary: dict[str, Any]) -> None:
    log.info(
        "summary: %d people for %.0f s against %s: %d messages sent, %d deliveries (%d missed), "
        "%d bot replies seen; error rate %.2f %%, missed %.2f %%: %s",
        summary["people"],
        summary["duration_seconds"],
        summary["api"] or summary["target"],
        summary["messages_sent"],
        summary["deliveries"]["delivered"],
        summary["deliveries"]["missed"],
        summary["bot_replies_seen"],
        summary["error_rate"] * 100,
        summary["missed_rate"] * 100,
        "PASSED" if summary["passed"] else f"FAILED ({summary['verdict']})",
    )
    for kind, numbers in summary["requests"].items():
        if numbers["ok"] or numbers["failed"]:
            log.info(
                "summary: %-7s %5d ok, %4d failed; p50 %s ms, p95 %s ms, p99 %s ms, max %s ms",
                kind,
                numbers["ok"],
                numbers["failed"],
                numbers["p50_ms"],
                numbers["p95_ms"],
                numbers["p99_ms"],
                numbers["max_ms"],
            )
    delivery = summary["deliveries"]
    log.info(
        "summary: delivery (sent -> on another person's stream) p50 %s ms, p95 %s ms, p99 %s ms, max %s ms",
        delivery["p50_ms"],
        delivery["p95_ms"],
        delivery["p99_ms"],
        delivery["max_ms"],
    )
    generator = summary["generator"]
    log.info(
        "summary: the load generator used %.0f %% of a core; its event loop was late by up to %s ms (p99)",
        generator["cpu_share"] * 100,
        generator["loop_lag_p99_ms"],
    )
    for failure, count in summary["failures"].items():
        log.info("summary: failed %s x%d", failure, count)
