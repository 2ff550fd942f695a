"""Health and lifecycle as shipped, read statically: compose healthchecks and start order,
the pods' pause before stopping and their grace period, disruption budgets, and one
version for the package, the image and the manifests.

The same things run for real elsewhere: the compose healthchecks in
test_compose_nginx.py, the image's label and ``--version`` in test_containers.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from yarl import URL

from synergychat.__main__ import SHUTDOWN_TIMEOUT_SECONDS
from synergychat.probe import DEFAULT_TIMEOUT_SECONDS
from synergychat.version import version

from .conftest import OVERLAYS, REPO, run, tool
from .manifests import PORT_SETTING, Manifests, Workload

COMPOSE_FILES = {"network": ("compose.yaml",), "nginx": ("compose.yaml", "compose.nginx.yaml")}
PROBE_COMMAND = ["CMD", "python3", "-m", "synergychat", "probe"]
# After the pause and the app's own shutdown: closing its databases and the crawl.
CLOSING_SECONDS = 3


def compose_services(files: tuple[str, ...]) -> dict[str, Any]:
    args = [tool("podman-compose")]
    for file in files:
        args += ["-f", str(REPO / file)]
    services: dict[str, Any] = yaml.safe_load(run([*args, "config"]).stdout)["services"]
    return services


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, f"unexpected duration {duration!r}"
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def start_order(services: dict[str, Any]) -> list[str]:
    """Services in an order that respects depends_on (and proof there is no cycle)."""
    order: list[str] = []
    remaining = dict(services)
    while remaining:
        ready = sorted(name for name, s in remaining.items() if set(s.get("depends_on", {})) <= set(order))
        assert ready, f"depends_on has a cycle among {sorted(remaining)}"
        order += ready
        for name in ready:
            del remaining[name]
    return order


@pytest.mark.parametrize("files", COMPOSE_FILES.values(), ids=COMPOSE_FILES.keys())
def test_every_compose_service_has_a_healthcheck_that_can_run(files: tuple[str, ...]) -> None:
    services = compose_services(files)
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] == "CMD", f"{name}: exec form (no shell is assumed)"
        # The engine's timeout leaves the probe room to say why it failed; checks don't overlap.
        assert seconds(check["timeout"]) < seconds(check["interval"]), name
        assert check["retries"] >= 2, f"{name}: one slow answer must not make it unhealthy"
        if name == "nginx":
            # Debian's nginx image has bash, no curl: the check speaks HTTP over /dev/tcp.
            assert check["test"][1:3] == ["bash", "-c"] and "/dev/tcp/127.0.0.1/80" in check["test"][3]
            continue
        # Our image has no curl or wget: the check is the image's own probe, of the role's readiness.
        assert check["test"][: len(PROBE_COMMAND)] == PROBE_COMMAND, name
        (url,) = check["test"][len(PROBE_COMMAND) :]
        probed = URL(url)
        assert probed.host == "127.0.0.1" and probed.path == "/readyz", name
        assert probed.port == int(service["environment"][PORT_SETTING[name]]), f"{name} listens elsewhere"
        assert DEFAULT_TIMEOUT_SECONDS < seconds(check["timeout"]), name


@pytest.mark.parametrize("files", COMPOSE_FILES.values(), ids=COMPOSE_FILES.keys())
def test_compose_services_start_once_their_dependencies_are_healthy(files: tuple[str, ...]) -> None:
    services = compose_services(files)
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}: {condition}"
    order = start_order(services)
    # The crawler first, then the api that asks it, then the page that calls the api,
    # then the entry in front of them.
    expected = ["crawler", "api", "web", "nginx"] if "nginx" in services else ["crawler", "api", "web"]
    assert order == expected
    # Only what the dependant can't work without is required: a broken crawler must not
    # keep the chat down, nor a broken api the page (docker compose warns and goes on).
    assert services["api"]["depends_on"]["crawler"].get("required") is False
    assert services["web"]["depends_on"]["api"].get("required") is False


def serving_workloads(found: Manifests) -> list[Workload]:
    """Workloads some Service sends traffic to."""
    selectors = [service["spec"]["selector"] for service in found.of_kind("Service")]
    return [w for w in found.workloads if any(s.items() <= w.pod_labels.items() for s in selectors)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_pods_pause_before_they_stop(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    found = Manifests(rendered[overlay])
    serving = serving_workloads(found)
    assert {w.role for w in serving} >= ({"all"} if overlay == "all-in-one" else {"web", "api", "crawler"})
    for workload in serving:
        for container in workload.containers:
            # The kubelet's own sleep: no binary in the image needed (Kubernetes 1.30+).
            pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert 2 <= pause <= 15, f"{workload.name}: a {pause} s pause"
            grace = workload.pod.get("terminationGracePeriodSeconds", 30)
            assert grace >= pause + SHUTDOWN_TIMEOUT_SECONDS + CLOSING_SECONDS, (
                f"{workload.name}: {grace} s of grace for a {pause} s pause and a "
                f"{SHUTDOWN_TIMEOUT_SECONDS:g} s shutdown"
            )


def replica_range(found: Manifests, workload: Workload) -> tuple[int, int]:
    """(fewest, most) replicas the workload can run: its HPA's bounds, else its replicas."""
    for hpa in found.of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == ("Deployment", workload.name):
            return hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    replicas = workload.deployment["spec"].get("replicas", 1)
    return replicas, replicas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_keep_replicated_roles_serving_without_blocking_drains(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = Manifests(rendered[overlay])
    budgets = found.of_kind("PodDisruptionBudget")
    for budget in budgets:
        selected = found.selected(budget["spec"]["selector"]["matchLabels"])
        assert len(selected) == 1, f"{budget['metadata']['name']} selects {[w.name for w in selected]}"
    for workload in serving_workloads(found):
        fewest, most = replica_range(found, workload)
        mine = [b for b in budgets if found.selected(b["spec"]["selector"]["matchLabels"]) == [workload]]
        if most == 1:
            # One pod: a budget could only stop a node drain (forever, with minAvailable: 1).
            assert not mine, f"{workload.name} runs one pod and has a disruption budget"
            continue
        assert len(mine) == 1, f"{workload.name} runs up to {most} pods and has no disruption budget"
        spec = mine[0]["spec"]
        if "maxUnavailable" in spec:
            allowed_at_fewest = min(spec["maxUnavailable"], fewest)
        else:
            allowed_at_fewest = fewest - spec["minAvailable"]
        assert allowed_at_fewest >= 1, f"{workload.name}: at {fewest} replica(s) no drain could proceed"
        # Never more than one pod at a time once it runs several.
        assert spec.get("maxUnavailable", 1) == 1
        assert spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


def test_one_version_for_the_package_the_image_and_the_manifests() -> None:
    package = version()
    dockerfile = (REPO / "Dockerfile").read_text()
    labels = re.findall(r'org\.opencontainers\.image\.version="([^"]*)"', dockerfile)
    assert labels == [package], f"the image says {labels}, pyproject.toml says {package}"
    # Every kustomization that tags the image tags it with the package's version.
    tags = {}
    for path in (REPO / "k8s").rglob("kustomization.yaml"):
        for image in yaml.safe_load(path.read_text()).get("images", ()):
            tags[str(path.relative_to(REPO))] = image.get("newTag")
    assert tags and set(tags.values()) == {package}, tags
