"""The autoscaling lesson's components (loadgen, course-autoscaling), added to overlays as a user adds them.

A copy of k8s/ gets ``components:`` appended to the minikube and GKE overlays;
the result is rendered with ``kubectl kustomize``, validated strictly, and
followed the way the cluster follows it (loadgen -> api Service -> api pod,
HPA -> Deployment), with the same hardening the base's pods have.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from yarl import URL

from synergychat.settings import LoadgenSettings, RamHoldSettings

from .conftest import APP_UID, REPO, Podman, get_json, render, run, tool, wait_ready
from .manifests import Manifests, Workload

COMPONENTS = ("loadgen", "course-autoscaling")
OVERLAYS_WITH_COMPONENTS = ("minikube", "gke")
ROLES = {"loadgen", "testcpu", "testram"}
SETTINGS = {
    "testcpu": {"ROLE"},
    "testram": {"ROLE"} | {name.upper() for name in RamHoldSettings.model_fields},
    "loadgen": {"ROLE"} | {name.upper() for name in LoadgenSettings.model_fields},
}
# What Python itself takes besides MEGABYTES (measured: about 35 MiB resident).
PYTHON_MIB = 40


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi)?", quantity)
    assert match, quantity
    return float(match.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2**20}[match.group(2)]


@pytest.fixture(scope="module")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("components") / "k8s"
    shutil.copytree(REPO / "k8s", root)
    for overlay in OVERLAYS_WITH_COMPONENTS:
        path = root / "overlays" / overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        kustomization.setdefault("components", []).extend(f"../../components/{name}" for name in COMPONENTS)
        path.write_text(yaml.safe_dump(kustomization))
    return root


@pytest.fixture(scope="module")
def with_components(k8s_copy: Path) -> dict[str, list[dict[str, Any]]]:
    return {overlay: render(k8s_copy / "overlays" / overlay) for overlay in OVERLAYS_WITH_COMPONENTS}


def added(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The components' objects: those labelled with one of their roles."""
    return [
        doc for doc in docs if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") in ROLES
    ]


def workloads(docs: list[dict[str, Any]]) -> dict[str, Workload]:
    found = Manifests(docs)
    return {w.role: w for w in found.workloads if w.role in ROLES}


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_components_pass_strict_schema_validation(
    with_components: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    objects = added(with_components[overlay])
    assert {doc["kind"] for doc in objects} == {
        "ServiceAccount",
        "Deployment",
        "ConfigMap",
        "HorizontalPodAutoscaler",
    }
    path = tmp_path / "components.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.30", "--quiet", str(path)], check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "ERROR" not in output, output
    assert "Couldn't find schema" not in output, output


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_components_leave_the_overlay_alone(
    with_components: dict[str, list[dict[str, Any]]], rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    # Adding the lesson must not change a single object of the chat itself.
    ours = [doc for doc in with_components[overlay] if doc not in added(with_components[overlay])]
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])
    assert sorted(ours, key=key) == sorted(rendered[overlay], key=key)


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_one_image_a_role_and_only_settings_of_that_role(
    with_components: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = workloads(with_components[overlay])
    assert set(found) == ROLES
    for role, workload in found.items():
        assert workload.container["image"] == "synergychat:0.1.0"
        assert workload.pod_labels["app.kubernetes.io/component"] == role
        assert workload.pod_labels["app.kubernetes.io/part-of"] == "synergychat"
        unknown = set(workload.env()) - SETTINGS[role]
        assert not unknown, f"{workload.name} sets {sorted(unknown)}, which ROLE={role} never reads"


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_pods_are_hardened_like_the_base(
    with_components: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for workload in workloads(with_components[overlay]).values():
        pod = workload.pod["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == APP_UID
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        container = workload.container
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys() and {"cpu", "memory"} <= resources[
            "limits"
        ].keys()
        account = Manifests(with_components[overlay]).get(
            "ServiceAccount", workload.pod["serviceAccountName"]
        )
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_loadgen_targets_the_api_service_and_serves_its_probes(
    with_components: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = Manifests(with_components[overlay])
    loadgen = workloads(with_components[overlay])["loadgen"]
    env = loadgen.env()
    # Strings, as the environment gives them: pydantic converts each to its field's type.
    fields: dict[str, Any] = {name.lower(): value for name, value in env.items() if name != "ROLE"}
    settings = LoadgenSettings(**fields)
    url = URL(settings.loadgen_target_url)
    # A Service name of this namespace on one of its ports, leading to the api's pods.
    backend, port = found.service_backend(url.host or "", url.port or 80)
    assert backend.role == "api" and port == backend.container_port("http")
    assert loadgen.container_port("metrics") == settings.loadgen_port
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        check = loadgen.container[probe]
        assert check["httpGet"] == {"path": path, "port": "metrics"}
        assert 2 <= check["timeoutSeconds"] < check["periodSeconds"] and check["failureThreshold"] >= 3
    # Polite by default: an endless run of a few people at a human pace.
    assert settings.loadgen_duration_seconds == 0 and settings.loadgen_users <= 20
    assert settings.loadgen_post_interval_seconds >= 5
    # Stopping takes up to the request timeout plus the drain (run.py's DRAIN_SECONDS):
    # within the grace period.
    assert loadgen.pod["terminationGracePeriodSeconds"] >= settings.loadgen_request_timeout_seconds + 10


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_testcpu_scales_on_half_its_cpu_request(
    with_components: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = Manifests(with_components[overlay])
    testcpu = workloads(with_components[overlay])["testcpu"]
    (hpa,) = [
        h for h in found.of_kind("HorizontalPodAutoscaler") if h["metadata"]["name"] == "synergychat-testcpu"
    ]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": testcpu.name,
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 50}
    assert hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # Utilization is a share of the request, and the HPA owns the replica count.
    assert "cpu" in testcpu.container["resources"]["requests"]
    assert "replicas" not in testcpu.deployment["spec"]
    # testcpu serves nothing: no probe could ask it anything (its grace period is short: it stops at once).
    assert "livenessProbe" not in testcpu.container and "ports" not in testcpu.container


@pytest.mark.parametrize("overlay", OVERLAYS_WITH_COMPONENTS)
def test_testram_holds_megabytes_under_its_limit(
    with_components: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    testram = workloads(with_components[overlay])["testram"]
    megabytes = RamHoldSettings(megabytes=testram.env()["MEGABYTES"]).megabytes
    limit = mebibytes(testram.container["resources"]["limits"]["memory"])
    request = mebibytes(testram.container["resources"]["requests"]["memory"])
    assert megabytes + PYTHON_MIB <= request <= limit


def test_gke_puts_the_components_in_its_namespace(with_components: dict[str, list[dict[str, Any]]]) -> None:
    for doc in added(with_components["gke"]):
        assert doc["metadata"].get("namespace") == "synergychat", f"{doc['kind']} {doc['metadata']['name']}"


# ---- the roles in the real image (podman) -----------------------------------------------


def container_exit(podman: Podman, name: str, timeout: float = 60) -> int:
    return int(podman("wait", name, timeout=timeout).stdout.strip().splitlines()[-1])


def logs_of(podman: Podman, name: str) -> str:
    result = podman("logs", name)
    return result.stdout + result.stderr


def wait_for_line(podman: Podman, name: str, fragment: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while fragment not in (text := logs_of(podman, name)):
        assert time.monotonic() < deadline, f"{fragment!r} not logged by {name} in {timeout} s:\n{text}"
        time.sleep(0.2)
    return text


@pytest.mark.container
def test_course_roles_run_as_the_course_runs_them(podman: Podman) -> None:
    # The course's manifests set no user and no ROLE-specific hardening: the image starts
    # as root, and both roles must still run as the image's user and stop at once, exit 0.
    testcpu = podman.container("testcpu", "--read-only", "--cpus", "1", "-e", "ROLE=testcpu")
    text = wait_for_line(podman, testcpu, "testcpu: keeping")
    assert "1 CPU core(s) busy with 1 worker process(es)" in text and "a CPU limit of 1 cores" in text
    users = podman("top", testcpu, "user").stdout.split()[1:]
    assert users and set(users) == {"synergychat"}, users
    testram = podman.container(
        "testram", "--read-only", "--memory", "256m", "-e", "ROLE=testram", "-e", "MEGABYTES=64"
    )
    assert "testram: holding 64 MiB" in wait_for_line(podman, testram, "every page touched")
    for name in (testcpu, testram):
        started = time.monotonic()
        podman("stop", "-t", "10", name)
        assert time.monotonic() - started < 5
        assert container_exit(podman, name) == 0
    missing = podman("run", "--rm", "--read-only", "-e", "ROLE=testram", podman.image, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == "synergychat: invalid setting MEGABYTES: Field required"


@pytest.mark.container
def test_loadgen_in_the_image_chats_with_an_api_container(podman: Podman) -> None:
    network = podman.network()
    _, api_port = podman.app("api", "api", network, alias="api")
    wait_ready(f"http://127.0.0.1:{api_port}/readyz", describe=podman.logs)
    loadgen, _ = podman.app(
        "loadgen",
        "loadgen",
        network,
        publish=False,
        env={
            "LOADGEN_TARGET_URL": "http://api:8080",
            "LOADGEN_USERS": "8",
            "LOADGEN_DURATION_SECONDS": "8",
            "LOADGEN_POST_INTERVAL_SECONDS": "2",
            "LOADGEN_SPAWN_RATE": "8",
        },
    )
    assert container_exit(podman, loadgen) == 0, podman.logs()
    stdout = podman("logs", loadgen).stdout
    report = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    status, stored = get_json(f"http://127.0.0.1:{api_port}/messages?limit=1000")
    assert status == 200
    assert (
        report["messages_sent"] == len([m for m in stored if m["AuthorUsername"].startswith("loadgen-")]) > 0
    )
    assert report["deliveries"]["missed"] == 0 and report["error_rate"] == 0
