"""/metrics in our deployment files: scraped inside, never served to the internet.

- The Gateway routes answer /metrics (and /api/metrics) themselves, with no backend.
- nginx, run here with the shipped site config in front of real web and api roles,
  answers 404 for every spelling of those paths, while the roles serve them directly.
- Every pod template carries the prometheus.io annotations; the metrics component,
  added to each overlay as a user adds it, renders a PodMonitor (a CRD, so checked
  against the fields we use) that finds every chat pod's metrics port.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.processes import free_port, running_role

from .conftest import OVERLAYS, REPO, UNVERIFIED, render, run, tool
from .gateway import route, rules_from
from .manifests import Manifests

# Every spelling a client might try to reach a role's /metrics through the entry.
METRICS_PATHS = ("/metrics", "/metrics/", "/api/metrics", "/api/metrics/", "/api//metrics", "/api/./metrics")
CHAT_ROLES = {"web", "api", "crawler", "all"}


# ---- Gateway routes ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_gateway_routes_send_metrics_nowhere(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    found = Manifests(rendered[overlay])
    rules = rules_from(found.of_kind("HTTPRoute"))
    hosts = {h for r in found.of_kind("HTTPRoute") for h in r["spec"].get("hostnames", ())} or {"any.example"}
    for host in hosts:
        # The Gateway API answers a rule without backends itself: no pod sees the request.
        rule_and_path = route(rules, host, "/metrics")
        assert rule_and_path is not None and rule_and_path[0].service is None, (host, rule_and_path)
        for path in METRICS_PATHS:
            rule_and_path = route(rules, host, path)
            if rule_and_path is None or rule_and_path[0].service is None:
                continue
            # Routed on to a pod: then under a path that is not its /metrics.
            assert rule_and_path[1].rstrip("/") != "/metrics", (host, path, rule_and_path)
    # The chat itself still goes through.
    assert all(route(rules, host, "/") for host in hosts)


# ---- nginx --------------------------------------------------------------------------


def nginx_config(tmp: Path, http_port: int, https_port: int, web: str, api: str) -> Path:
    """The shipped site config, pointed at local roles and ports, in a main config of its own."""
    site = (REPO / "deploy" / "nginx" / "synergychat.conf").read_text()
    site = re.sub(r"^\s*listen \[::\].*$", "", site, flags=re.MULTILINE)
    site = site.replace("listen 80 ", f"listen 127.0.0.1:{http_port} ")
    site = site.replace("listen 443 ", f"listen 127.0.0.1:{https_port} ")
    site = site.replace("http://web:8080", web).replace("http://api:8080", api)
    site = site.replace("/etc/nginx/certs/", f"{tmp}/certs/")
    (tmp / "site.conf").write_text(site)
    temp_paths = "".join(
        f"    {name}_temp_path {tmp}/{name}-temp;\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp / "nginx.conf"
    main.write_text(
        f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log {tmp}/access.log;\n{temp_paths}    include {tmp}/site.conf;\n}}\n"
    )
    return main


@contextmanager
def running_nginx(tmp: Path, web: str, api: str) -> Iterator[str]:
    run(["bash", str(REPO / "scripts" / "make-cert.sh"), str(tmp / "certs")])
    http_port, https_port = free_port(), free_port()
    config = nginx_config(tmp, http_port, https_port, web, api)
    process = subprocess.Popen(
        [tool("nginx"), "-p", str(tmp), "-c", str(config), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{https_port}"
    try:
        deadline = time.monotonic() + 10
        while status_of(url + "/", UNVERIFIED) is None:
            assert process.poll() is None, (tmp / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def status_of(url: str, context: ssl.SSLContext | None = None) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
    except OSError:
        return None


def test_nginx_answers_404_for_metrics_in_every_spelling(tmp_path: Path) -> None:
    with (
        running_role("web", tmp_path, {"API_URL": "/api/"}) as web,
        running_role("api", tmp_path) as api,
        running_nginx(tmp_path, web.url, api.url) as entry,
    ):
        # The roles serve their metrics (to Prometheus on the compose network)...
        assert status_of(web.url + "/metrics") == 200 and status_of(api.url + "/metrics") == 200
        # ...and nginx, the only published port, never passes a request for them on.
        for path in (*METRICS_PATHS, "/api/%6Detrics", "/%6detrics"):
            assert status_of(entry + path, UNVERIFIED) == 404, path
        # The chat still works through it.
        assert status_of(entry + "/", UNVERIFIED) == 200
        assert status_of(entry + "/api/messages", UNVERIFIED) == 200


# ---- annotations and the metrics component --------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_annotated_for_scraping(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for workload in Manifests(rendered[overlay]).workloads:
        annotations = workload.deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", workload.name
        assert annotations["prometheus.io/path"] == "/metrics", workload.name
        # The annotation names a number (Prometheus' relabelling can't resolve a port's name).
        assert int(annotations["prometheus.io/port"]) == workload.container_port("http"), workload.name


# The fields of prometheus-operator's PodMonitor (monitoring.coreos.com/v1) that we use,
# strictly: kubernetes-validate has no schema for a CRD, so a misspelt field fails here.
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
POD_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def with_metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every overlay with ``components: [../../components/metrics]`` added, as a user adds it."""
    root = tmp_path_factory.mktemp("metrics") / "k8s"
    shutil.copytree(REPO / "k8s", root)
    for overlay in OVERLAYS:
        path = root / "overlays" / overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        kustomization.setdefault("components", []).append("../../components/metrics")
        path.write_text(yaml.safe_dump(kustomization))
    return {overlay: render(root / "overlays" / overlay) for overlay in OVERLAYS}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", ()):
        assert expression["operator"] == "In", expression  # the only one we use
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_metrics_component_scrapes_every_chat_pod(
    with_metrics: dict[str, list[dict[str, Any]]],
    rendered: dict[str, list[dict[str, Any]]],
    overlay: str,
) -> None:
    # The component adds its PodMonitor and changes nothing of the chat's own objects.
    added = [doc for doc in with_metrics[overlay] if doc not in rendered[overlay]]
    assert [doc["kind"] for doc in added] == ["PodMonitor"]
    assert len(with_metrics[overlay]) == len(rendered[overlay]) + 1
    found = Manifests(with_metrics[overlay])
    (monitor,) = added
    jsonschema.validate(monitor, POD_MONITOR_SCHEMA)
    if overlay == "gke":
        assert monitor["metadata"].get("namespace") == "synergychat"

    scraped = [w for w in found.workloads if selects(monitor["spec"]["selector"], w.pod_labels)]
    assert scraped and scraped == found.workloads
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    for workload in scraped:
        assert workload.role in CHAT_ROLES
        # A port of that name, where the role listens (and so serves /metrics).
        assert workload.container_port(endpoint["port"]) == workload.container_port("http")
    assert set(monitor["spec"]["podTargetLabels"]) <= set(scraped[0].pod_labels)


def test_the_pod_monitor_schema_rejects_typos(with_metrics: dict[str, list[dict[str, Any]]]) -> None:
    # Guards the schema itself, as the Gateway schema's test does.
    (monitor,) = Manifests(with_metrics["all-in-one"]).of_kind("PodMonitor")
    typo = {
        **monitor,
        "spec": {**monitor["spec"], "podMetricEndpoints": monitor["spec"]["podMetricsEndpoints"]},
    }
    bad_interval = {
        **monitor,
        "spec": {**monitor["spec"], "podMetricsEndpoints": [{"port": "http", "interval": "30 seconds"}]},
    }
    for broken in (typo, bad_interval):
        assert not jsonschema.Draft202012Validator(POD_MONITOR_SCHEMA).is_valid(broken)
