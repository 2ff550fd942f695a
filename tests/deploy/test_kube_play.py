"""The Kubernetes overlays run for real with ``podman kube play``, then chat through their routes.

Podman plays Deployments, their ConfigMaps and PersistentVolumeClaims; it has
no Services, Gateway or kube-proxy. The test-only patches below stand in for
exactly those, and nothing else:

- each Deployment is played from its own file on a network the test creates,
  with its Services' names as network aliases (cluster DNS);
- a URL naming a Service gets the container port that Service targets
  (kube-proxy's 80 -> 8080), since an alias cannot translate ports;
- every container port is published on 127.0.0.1 only, on a free port
  (hostIP/hostPort; otherwise podman publishes on all interfaces and clashes);
- the overlay's HTTPRoutes are applied by a small local gateway (gateway.py);
- names get a per-run prefix, the crawler reads a fake Gutendex.
Everything else (image, env, probes' paths, security, volumes) is as rendered.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from .chat import ChatBrowser, Entry, chat_end_to_end
from .conftest import APP_UID, GUTENDEX_ENV, Podman, free_port, get_json, wait_ready
from .gateway import Rule, rules_from, serve_gateway
from .manifests import Manifests, Workload

pytestmark = pytest.mark.container

PAGE_HOST = {"minikube": "synergychat.internal", "gke": "synergychat.example", "all-in-one": "localhost"}
# Where the page's API_URL must lead the browser: its own host name, or /api on the page's.
API_BASE = {
    "minikube": "http://synergychatapi.internal/",
    "gke": "http://synergychat.example/api/",
    "all-in-one": "http://localhost/api/",
}
# Each role's readiness path, and whether it must see its crawler there.
READY = {
    "web": ("/readyz", False),
    "api": ("/readyz", True),
    "crawler": ("/readyz", False),
    "all": ("/api/readyz", True),
}


@dataclass
class PlayedWorkload:
    role: str
    file: Path
    pod: str
    containers: list[str]
    host_ports: dict[int, int] = field(default_factory=dict)  # containerPort -> 127.0.0.1 port

    @property
    def replacement_file(self) -> Path:
        """The same pod without its claims: kube play makes a claim's volume, or fails if it exists."""
        return self.file.with_suffix(".again.yaml")

    def url(self, container_port: int) -> str:
        return f"http://127.0.0.1:{self.host_ports[container_port]}"


def service_urls_to_container_ports(found: Manifests, value: str) -> str:
    """http://crawler-service -> http://crawler-service:8080, as kube-proxy would forward it."""
    url = URL(value)
    service_names = {service["metadata"]["name"] for service in found.of_kind("Service")}
    if url.scheme not in ("http", "https") or url.host is None or url.host not in service_names:
        return value
    _, container_port = found.service_backend(url.host, url.port or 80)
    return str(url.with_port(container_port))


def play_file(
    podman: Podman, found: Manifests, workload: Workload, overlay: str, tmp_path: Path
) -> PlayedWorkload:
    deployment = copy.deepcopy(workload.deployment)
    name = podman.name(f"{overlay}-{workload.role}")
    deployment["metadata"]["name"] = name
    deployment["metadata"].pop("namespace", None)
    pod = deployment["spec"]["template"]["spec"]
    played = PlayedWorkload(workload.role, tmp_path / f"{overlay}-{workload.role}.yaml", f"{name}-pod-0", [])

    configmaps: dict[str, dict[str, Any]] = {}
    claims = []
    for volume in pod.get("volumes", ()):
        # Podman names volumes after the pod's volume names: make them this run's.
        unique = podman.name(f"{overlay}-{workload.role}-{volume['name']}")
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", ()):
                if mount["name"] == volume["name"]:
                    mount["name"] = unique
        volume["name"] = unique
        if "persistentVolumeClaim" in volume:
            claim = copy.deepcopy(
                found.get("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
            )
            claim["metadata"] = {"name": podman.name(f"{overlay}-{claim['metadata']['name']}")}
            volume["persistentVolumeClaim"]["claimName"] = claim["metadata"]["name"]
            claims.append(claim)
    for container in pod["containers"]:
        container["image"] = podman.image
        played.containers.append(f"{played.pod}-{container['name']}")
        for port in container.get("ports", ()):
            port["hostIP"] = "127.0.0.1"
            port["hostPort"] = played.host_ports[port["containerPort"]] = free_port()
        refs = [
            item["valueFrom"]["configMapKeyRef"]["name"]
            for item in container.get("env", ())
            if "valueFrom" in item
        ]
        refs += [source["configMapRef"]["name"] for source in container.get("envFrom", ())]
        for ref in refs:
            configmap = copy.deepcopy(found.configmap(ref))
            configmap["metadata"] = {"name": ref}
            configmap["data"] = {
                k: service_urls_to_container_ports(found, v) for k, v in configmap["data"].items()
            }
            configmaps[ref] = configmap
        if workload.role in ("crawler", "all"):
            container.setdefault("env", []).extend({"name": k, "value": v} for k, v in GUTENDEX_ENV.items())

    played.file.write_text(yaml.safe_dump_all([*configmaps.values(), *claims, deployment]))
    played.replacement_file.write_text(yaml.safe_dump_all([*configmaps.values(), deployment]))
    # kube down keeps claims' volumes, and emptyDirs' too on this podman: remove them after it.
    volumes = [volume["name"] for volume in pod.get("volumes", ()) if "emptyDir" in volume]
    volumes += [claim["metadata"]["name"] for claim in claims]
    podman.on_cleanup("volume", "rm", "-f", *volumes)
    podman.on_cleanup("kube", "down", str(played.file))
    return played


def play(
    podman: Podman,
    found: Manifests,
    workload: Workload,
    played: PlayedWorkload,
    network: str,
    again: bool = False,
) -> None:
    aliases = [
        service["metadata"]["name"]
        for service in found.of_kind("Service")
        if workload in found.selected(service["spec"]["selector"])
    ]
    network_arg = network + "".join(f":alias={alias}" for alias in aliases)
    podman("kube", "play", "--network", network_arg, str(played.replacement_file if again else played.file))


def routes_of(found: Manifests) -> list[Rule]:
    """The overlay's HTTPRoutes; with none, its one Service, as `kubectl port-forward service/...` reaches it."""
    if found.of_kind("HTTPRoute"):
        return rules_from(found.of_kind("HTTPRoute"))
    (service,) = found.of_kind("Service")
    return [Rule((), "/", None, service["metadata"]["name"], service["spec"]["ports"][0]["port"])]


@pytest.mark.parametrize("overlay", ["minikube", "gke", "all-in-one"])
async def test_overlay_chats_end_to_end(
    podman: Podman, rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    found = Manifests(rendered[overlay])
    network = podman.network(f"{overlay}-net")
    podman.fake_gutendex(network)
    played: dict[str, PlayedWorkload] = {}
    for workload in found.workloads:
        played[workload.role] = play_file(podman, found, workload, overlay, tmp_path)
        play(podman, found, workload, played[workload.role], network)
        podman.containers.extend(played[workload.role].containers)  # for their logs on failure

    port = 8080
    for role, pod in played.items():
        path, crawler = READY[role]
        wait_ready(pod.url(port) + path, describe=podman.logs, crawler=crawler)
    for pod in played.values():
        for container in pod.containers:
            assert podman("exec", container, "id", "-u").stdout.strip() == str(APP_UID)
            assert podman("exec", container, "touch", "/written", check=False).returncode != 0

    # The overlay's routes, each to the pod its Service selects.
    rules = routes_of(found)
    backends = {}
    for rule in rules:
        if rule.service is None:
            continue  # answered by the gateway itself
        workload, container_port = found.service_backend(rule.service, rule.port)
        backends[(rule.service, rule.port)] = played[workload.role].url(container_port)
    # GKE's load balancer health checks, as the HealthCheckPolicies configure them.
    for policy in found.of_kind("HealthCheckPolicy"):
        workload, container_port = found.service_backend(policy["spec"]["targetRef"]["name"], 80)
        path = policy["spec"]["default"]["config"]["httpHealthCheck"]["requestPath"]
        assert get_json(played[workload.role].url(container_port) + path)[0] == 200

    page = f"http://{PAGE_HOST[overlay]}/"
    async with serve_gateway(rules, backends) as gateway:
        hostnames = {h for r in found.of_kind("HTTPRoute") for h in r["spec"].get("hostnames", ())}
        entry = Entry({host: gateway for host in hostnames | {PAGE_HOST[overlay]}})
        async with aiohttp.ClientSession() as session:
            browser = ChatBrowser(session, entry)
            await chat_end_to_end(browser, page, expected_api=API_BASE[overlay])
            api = await browser.open_page(page)
            before = await browser.messages(api)

            # The api's pod replaced: its claim keeps the messages.
            role = "all" if "all" in played else "api"
            podman("kube", "down", str(played[role].file))
            play(podman, found, found.workload_of_role(role), played[role], network, again=True)
            wait_ready(played[role].url(port) + READY[role][0], describe=podman.logs)
            assert await browser.messages(api) == before
