"""The loop's histogram exports what prometheus-client's own Histogram would, given the same
observations: the same buckets (a value on a bound counts in it), counts and sums."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from synergychat.loop_histogram import LoopHistogram
from synergychat.metrics import REQUEST_BUCKETS

NAME = "demo_request_duration_seconds"
OBSERVED = {
    ("api", "GET"): [0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.7, 30.0, 31.0, 1e9],
    ("web", "POST"): [0.004, 0.004, 0.05],
}


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_it_exports_what_prometheus_clients_histogram_would() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop_histogram = LoopHistogram(NAME, "Demo.", ("part", "method"), REQUEST_BUCKETS)
    ours.register(loop_histogram)
    histogram = Histogram(NAME, "Demo.", ["part", "method"], buckets=REQUEST_BUCKETS, registry=theirs)
    for labels, values in OBSERVED.items():
        series = loop_histogram.series(labels)
        for value in values:
            series.observe(value)
            histogram.labels(*labels).observe(value)
    expected = samples(theirs)
    assert len(expected) == 2 * (len(REQUEST_BUCKETS) + 1 + 2)
    assert samples(ours) == expected
    # The help and type lines too: a scraper sees one histogram either way.
    assert f"# TYPE {NAME} histogram" in generate_latest(ours).decode()


def test_a_series_is_made_once_and_needs_every_label() -> None:
    histogram = LoopHistogram(NAME, "Demo.", ("part", "method"), (0.1, 1.0))
    assert histogram.series(("api", "GET")) is histogram.series(("api", "GET"))
    with pytest.raises(ValueError, match="takes 2 label values, got 1"):
        histogram.series(("api",))
