"""Read rendered Kubernetes objects the way the cluster wires them together."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings

from synergychat.settings import ApiSettings, CrawlerSettings, WebSettings

SETTINGS_OF_ROLE: dict[str, tuple[type[BaseSettings], ...]] = {
    "web": (WebSettings,),
    "api": (ApiSettings,),
    "crawler": (CrawlerSettings,),
    "all": (WebSettings, ApiSettings, CrawlerSettings),
}
PORT_SETTING = {"web": "WEB_PORT", "api": "API_PORT", "crawler": "CRAWLER_PORT", "all": "WEB_PORT"}


def known_settings(role: str) -> set[str]:
    """The env vars a role reads: its settings models' field names upper-cased, plus ROLE."""
    return {"ROLE"} | {name.upper() for model in SETTINGS_OF_ROLE[role] for name in model.model_fields}


def all_known_settings() -> set[str]:
    return set().union(*(known_settings(role) for role in SETTINGS_OF_ROLE))


@dataclass
class Workload:
    deployment: dict[str, Any]
    manifests: Manifests

    @property
    def name(self) -> str:
        name: str = self.deployment["metadata"]["name"]
        return name

    @property
    def pod(self) -> dict[str, Any]:
        pod: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return pod

    @property
    def pod_labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.deployment["spec"]["template"]["metadata"]["labels"]
        return labels

    @property
    def containers(self) -> list[dict[str, Any]]:
        containers: list[dict[str, Any]] = self.pod["containers"]
        return containers

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.containers  # one container per pod in our manifests
        return container

    def env(self, container: dict[str, Any] | None = None) -> dict[str, str]:
        """The container's environment with ConfigMap references resolved (KeyError if dangling)."""
        container = container or self.container
        values: dict[str, str] = {}
        for source in container.get("envFrom", ()):
            values.update(self.manifests.configmap(source["configMapRef"]["name"])["data"])
        for item in container.get("env", ()):
            if "value" in item:
                values[item["name"]] = item["value"]
            elif "secretKeyRef" in item["valueFrom"]:
                ref = item["valueFrom"]["secretKeyRef"]
                data = self.manifests.secret_data(ref["name"])
                assert ref["key"] in data, f"{self.name}: Secret {ref['name']} has no key {ref['key']}"
                values[item["name"]] = data[ref["key"]]
            else:
                ref = item["valueFrom"]["configMapKeyRef"]
                data = self.manifests.configmap(ref["name"])["data"]
                assert ref["key"] in data, f"{self.name}: ConfigMap {ref['name']} has no key {ref['key']}"
                values[item["name"]] = data[ref["key"]]
        return values

    @property
    def role(self) -> str:
        return self.env()["ROLE"]

    def container_port(self, target: int | str) -> int:
        """The containerPort a Service's targetPort or a probe's port names."""
        for container in self.containers:
            for port in container.get("ports", ()):
                number: int = port["containerPort"]
                if target in (number, port.get("name")):
                    return number
        raise AssertionError(f"{self.name} has no container port {target!r}")


class Manifests:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        matches = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
        return matches[0]

    def configmap(self, name: str) -> dict[str, Any]:
        return self.get("ConfigMap", name)

    def secret_data(self, name: str) -> dict[str, str]:
        """A Secret's values, decoded (kustomize's secretGenerator writes them base64 in data)."""
        secret = self.get("Secret", name)
        decoded = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
        return {**decoded, **secret.get("stringData", {})}

    @property
    def workloads(self) -> list[Workload]:
        return [Workload(doc, self) for doc in self.of_kind("Deployment")]

    def workload_of_role(self, role: str) -> Workload:
        (workload,) = [w for w in self.workloads if w.role == role]
        return workload

    def selected(self, selector: dict[str, str]) -> list[Workload]:
        return [w for w in self.workloads if selector.items() <= w.pod_labels.items()]

    def service_backend(self, name: str, port: int) -> tuple[Workload, int]:
        """Follow a Service port to the one Deployment it selects and that pod's container port."""
        service = self.get("Service", name)
        (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port] or [None]
        assert service_port is not None, f"Service {name} has no port {port}"
        workloads = self.selected(service["spec"]["selector"])
        assert len(workloads) == 1, f"Service {name} selects {[w.name for w in workloads]}"
        workload = workloads[0]
        return workload, workload.container_port(service_port.get("targetPort", port))

    def backend_refs(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for route in self.of_kind("HTTPRoute"):
            for rule in route["spec"]["rules"]:
                for ref in rule.get("backendRefs", ()):
                    yield route, ref
