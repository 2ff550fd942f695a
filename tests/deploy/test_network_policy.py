"""The opt-in network-policy component, added to every overlay as a user adds it.

Each overlay is rendered with it (and the minikube one with the course's
components as well; the scale overlay with the sub-component for its database,
bundled or external), validated strictly, and then every connection the chat
needs is checked against the rendered policies (network_policy.py), as is a list
of connections that must be refused. A policy that would cut the chat (a
wrong port, a misspelt label, a missing DNS rule) fails here, not in someone's
cluster.
"""

from __future__ import annotations

import copy
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO, render, run, tool
from .manifests import Manifests, Workload
from .network_policy import Endpoint, Policy, allowed, cluster_pod, policy_types, selects, workload_pod

# What a user adds to each overlay (docs/DEPLOY.md).
COMPONENTS = {
    "minikube": ["network-policy"],
    "gke": ["network-policy", "network-policy/gke"],
    "all-in-one": ["network-policy"],
    "minikube+course": ["network-policy", "loadgen", "course-autoscaling"],
    "scale": ["network-policy", "network-policy/postgres"],
    "scale+external-database": ["network-policy", "network-policy/external-database"],
}
# Components of the overlay's own, enabled before those (docs/SCALE.md).
OVERLAY_COMPONENTS = {"scale+external-database": ["external-database"]}
POSTGRES_SUBCOMPONENT = REPO / "k8s" / "components" / "network-policy" / "postgres"
GATEWAY_KINDS = {"GatewayClass", "Gateway", "HTTPRoute", "HealthCheckPolicy"}

# Who is out there. Addresses from the documentation ranges where any public one would do.
SOMEONE_ON_THE_INTERNET = Endpoint("someone on the internet", "198.51.100.7")
GUTENDEX = Endpoint("the catalogue (gutendex.com) and its book hosts", "203.0.113.10")
METADATA_SERVER = Endpoint("the cloud's metadata server", "169.254.169.254")
VPC_HOST = Endpoint("a host inside the VPC", "10.128.0.9")
GOOGLE_FRONT_END = Endpoint("GKE's load balancer (a Google Front End)", "35.191.12.34")
GOOGLE_HEALTH_CHECK = Endpoint("GKE's load balancer health check", "130.211.0.5")
NODE_LOCAL_DNS = Endpoint("NodeLocal DNSCache", "169.254.20.10")
KUBE_DNS = cluster_pod("kube-dns", "10.0.9.10", "kube-system", {"k8s-app": "kube-dns"})
PROMETHEUS = cluster_pod("prometheus", "10.0.9.2", "monitoring", {"app.kubernetes.io/name": "prometheus"})
GMP_COLLECTOR = cluster_pod("GKE managed Prometheus", "10.0.9.3", "gmp-system", {"app": "collector"})
# The external-database sub-component's placeholder address, standing for DATABASE-HOST
# in the external-database component's URLs (a user puts their own in both).
EXTERNAL_DATABASE = Endpoint("the external PostgreSQL (the placeholder address)", "192.0.2.10")


def envoy_proxy(namespace: str) -> Endpoint:
    """Envoy Gateway's proxy for our Gateway, as Envoy Gateway labels it."""
    return cluster_pod(
        "Envoy Gateway's proxy",
        "10.0.9.1",
        "envoy-gateway-system",
        {
            "app.kubernetes.io/name": "envoy",
            "app.kubernetes.io/component": "proxy",
            "app.kubernetes.io/managed-by": "envoy-gateway",
            "gateway.envoyproxy.io/owning-gateway-name": "synergychat-gateway",
            "gateway.envoyproxy.io/owning-gateway-namespace": namespace,
        },
    )


Connection = tuple[Endpoint, Endpoint, int, str]


class Cluster:
    """The overlay's pods with addresses, and the peers that talk to them."""

    def __init__(self, variant: str, docs: list[dict[str, Any]]) -> None:
        self.found = Manifests(docs)
        self.policies: list[Policy] = self.found.of_kind("NetworkPolicy")
        self.workloads: dict[str, Workload] = {w.role: w for w in self.found.workloads}
        self.pods = {
            role: workload_pod(workload, f"10.0.1.{number}")
            for number, (role, workload) in enumerate(sorted(self.workloads.items()), start=1)
        }
        namespace = next(iter(self.pods.values())).namespace or "default"
        self.entries = (
            [GOOGLE_FRONT_END, GOOGLE_HEALTH_CHECK] if variant == "gke" else [envoy_proxy(namespace)]
        )
        self.neighbour = cluster_pod("another app in the namespace", "10.0.9.20", namespace, {"app": "other"})
        self.database = self.find_database()

    def find_database(self) -> Endpoint | None:
        """The PostgreSQL the api and crawlers use: the scale overlay's StatefulSet pod, or
        (its external-database component) an address outside the cluster; None without one.

        The pod is built like the Deployments' (not one of ``self.pods``: it is no role)."""
        if "api" not in self.workloads or "API_DATABASE_URL" not in self.workloads["api"].env():
            return None
        statefulsets = [
            s for s in self.found.of_kind("StatefulSet") if s["metadata"]["name"] == "synergychat-postgres"
        ]
        if not statefulsets:
            return EXTERNAL_DATABASE
        (statefulset,) = statefulsets
        return workload_pod(Workload(statefulset, self.found), "10.0.2.1")

    def database_port(self, role: str) -> int:
        """The port in the role's database URL (the Service is headless: straight to the pod)."""
        url = self.workloads[role].env()[f"{role.upper()}_DATABASE_URL"]
        return urllib.parse.urlsplit(url).port or 5432

    def our_pods(self) -> dict[str, Endpoint]:
        """Every pod of ours: the roles', and PostgreSQL's when it runs in the cluster."""
        if self.database is None or self.database.namespace is None:
            return dict(self.pods)
        return {**self.pods, "PostgreSQL": self.database}

    def port(self, role: str, name: str = "http") -> int:
        return self.workloads[role].container_port(name)

    def serving(self) -> Iterator[str]:
        """Roles whose pods listen on a port."""
        return (role for role, workload in self.workloads.items() if self.pods[role].ports)

    def metrics_port(self, role: str) -> int:
        annotations = self.workloads[role].deployment["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/port" in annotations:
            return int(annotations["prometheus.io/port"])
        return self.port(role, next(iter(self.pods[role].ports)))

    def needed(self) -> Iterator[tuple[str, Connection]]:
        pods = self.pods
        for role in ("web", "api", "all"):
            if role in pods:
                for entry in self.entries:
                    yield f"the entry -> {role}", (entry, pods[role], self.port(role), "TCP")
        if "api" in pods and "crawler" in pods:
            yield "api -> crawler (/stats)", (pods["api"], pods["crawler"], self.port("crawler"), "TCP")
        for role in ("crawler", "all"):
            if role in pods:
                for port in (443, 80):
                    yield f"{role} -> the catalogue", (pods[role], GUTENDEX, port, "TCP")
        for role, pod in pods.items():
            for server, protocol in ((KUBE_DNS, "UDP"), (KUBE_DNS, "TCP"), (NODE_LOCAL_DNS, "UDP")):
                yield f"{role} -> DNS ({server.name}, {protocol})", (pod, server, 53, protocol)
        for role in self.serving():
            for scraper in (PROMETHEUS, GMP_COLLECTOR):
                yield (
                    f"{scraper.name} -> {role} /metrics",
                    (scraper, pods[role], self.metrics_port(role), "TCP"),
                )
        if "loadgen" in pods:
            yield "loadgen -> api", (pods["loadgen"], pods["api"], self.port("api"), "TCP")
        if self.database is not None:
            for role in ("api", "crawler"):
                yield f"{role} -> PostgreSQL", (pods[role], self.database, self.database_port(role), "TCP")

    def refused(self) -> Iterator[tuple[str, Connection]]:
        pods = self.pods
        for role in self.serving():
            port = self.port(role, next(iter(pods[role].ports)))
            yield f"the internet -> {role} directly", (SOMEONE_ON_THE_INTERNET, pods[role], port, "TCP")
            yield f"another app in the namespace -> {role}", (self.neighbour, pods[role], port, "TCP")
            yield f"prometheus -> {role} on another port", (PROMETHEUS, pods[role], 22, "TCP")
        if "crawler" in pods:
            crawler_port = self.port("crawler")
            for entry in self.entries:
                yield "the entry -> crawler", (entry, pods["crawler"], crawler_port, "TCP")
            yield "web -> crawler", (pods["web"], pods["crawler"], crawler_port, "TCP")
            yield "web -> api", (pods["web"], pods["api"], self.port("api"), "TCP")
            yield "crawler -> api", (pods["crawler"], pods["api"], self.port("api"), "TCP")
            yield "api -> the internet", (pods["api"], GUTENDEX, 443, "TCP")
            yield "web -> the internet", (pods["web"], GUTENDEX, 443, "TCP")
        for role in ("crawler", "all"):
            if role in pods:
                yield f"{role} -> the metadata server", (pods[role], METADATA_SERVER, 80, "TCP")
                yield f"{role} -> a private address", (pods[role], VPC_HOST, 443, "TCP")
                yield f"{role} -> the catalogue on another port", (pods[role], GUTENDEX, 25, "TCP")
        for role in ("testcpu", "testram"):
            if role in pods:
                yield f"{role} -> the internet", (pods[role], GUTENDEX, 443, "TCP")
        database = self.database
        if database is not None:
            port = self.database_port("api")
            yield "web -> PostgreSQL", (pods["web"], database, port, "TCP")
            yield "api -> PostgreSQL on another port", (pods["api"], database, port + 1, "TCP")
            for role in ("api", "crawler"):
                yield f"{role} -> another private address on {port}", (pods[role], VPC_HOST, port, "TCP")
            if database.namespace is not None:  # our pod: what reaches it, what it reaches
                for entry in self.entries:
                    yield "the entry -> PostgreSQL", (entry, database, port, "TCP")
                yield "the internet -> PostgreSQL", (SOMEONE_ON_THE_INTERNET, database, port, "TCP")
                yield "another app in the namespace -> PostgreSQL", (self.neighbour, database, port, "TCP")
                yield "prometheus -> PostgreSQL (it has no metrics)", (PROMETHEUS, database, port, "TCP")
                yield "PostgreSQL -> the internet", (database, GUTENDEX, 443, "TCP")


def blocked(cluster: Cluster, policies: list[Policy] | None = None) -> list[str]:
    policies = cluster.policies if policies is None else policies
    return [why for why, connection in cluster.needed() if not allowed(policies, *connection)]


def let_through(cluster: Cluster, policies: list[Policy] | None = None) -> list[str]:
    policies = cluster.policies if policies is None else policies
    return [why for why, connection in cluster.refused() if allowed(policies, *connection)]


@pytest.fixture(scope="module")
def with_policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    rendered = {}
    for variant, components in COMPONENTS.items():
        root = tmp_path_factory.mktemp(variant.replace("+", "-")) / "k8s"
        shutil.copytree(REPO / "k8s", root)
        overlay = root / "overlays" / variant.split("+")[0]
        path = overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        listed = kustomization.get("components") or []
        listed += OVERLAY_COMPONENTS.get(variant, [])
        listed += [f"../../components/{name}" for name in components]
        kustomization["components"] = listed
        path.write_text(yaml.safe_dump(kustomization))
        rendered[variant] = render(overlay)
    return rendered


@pytest.mark.parametrize("variant", COMPONENTS)
def test_overlays_with_the_component_pass_strict_validation(
    with_policies: dict[str, list[dict[str, Any]]], variant: str, tmp_path: Path
) -> None:
    docs = with_policies[variant]
    core = [doc for doc in docs if doc["kind"] not in GATEWAY_KINDS]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(core))
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.30", "--quiet", str(path)], check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "ERROR" not in output and "Couldn't find schema" not in output, output
    for policy in Manifests(docs).of_kind("NetworkPolicy"):
        labels = policy["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "synergychat" and "app" in labels, labels
    if variant == "gke":
        assert all(
            doc["metadata"].get("namespace") == "synergychat" for doc in core if doc["kind"] != "Namespace"
        )


@pytest.mark.parametrize("variant", COMPONENTS)
def test_every_path_the_chat_needs_is_allowed(
    with_policies: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    cluster = Cluster(variant.split("+")[0], with_policies[variant])
    assert sum(1 for _ in cluster.needed()) >= 8  # all-in-one has the fewest: one pod
    # The scale overlay's database is found (in the cluster, or outside it), so it is checked.
    assert (cluster.database is not None) == variant.startswith("scale")
    assert (cluster.database == EXTERNAL_DATABASE) == variant.endswith("external-database")
    assert blocked(cluster) == []


@pytest.mark.parametrize("variant", COMPONENTS)
def test_everything_else_is_refused(with_policies: dict[str, list[dict[str, Any]]], variant: str) -> None:
    cluster = Cluster(variant.split("+")[0], with_policies[variant])
    # Default deny really is the default: every one of our pods is isolated both ways
    # (PostgreSQL's too, when it runs in the cluster).
    for role, pod in cluster.our_pods().items():
        for direction in ("Ingress", "Egress"):
            assert any(
                selects(policy, pod) and direction in policy_types(policy) for policy in cluster.policies
            ), f"{role} is not isolated for {direction}"
    assert let_through(cluster) == []


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_without_the_component_only_the_crawler_is_guarded(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    cluster = Cluster(overlay, rendered[overlay])
    pods, crawler_port = cluster.pods, cluster.port("crawler")
    assert allowed(cluster.policies, pods["api"], pods["crawler"], crawler_port)
    assert not allowed(cluster.policies, pods["web"], pods["crawler"], crawler_port)
    assert not allowed(cluster.policies, SOMEONE_ON_THE_INTERNET, pods["crawler"], crawler_port)
    assert not allowed(cluster.policies, cluster.neighbour, pods["crawler"], crawler_port)
    # Prometheus scrapes the crawler (its annotations say so) from its own namespace.
    for scraper in (PROMETHEUS, GMP_COLLECTOR):
        assert allowed(cluster.policies, scraper, pods["crawler"], cluster.metrics_port("crawler"))
    # Everything else is as open as the cluster is (the component is opt-in).
    assert allowed(cluster.policies, SOMEONE_ON_THE_INTERNET, pods["api"], cluster.port("api"))
    assert allowed(cluster.policies, pods["crawler"], GUTENDEX, 443)


def policy_named(policies: list[Policy], name: str) -> Policy:
    (policy,) = [p for p in policies if p["metadata"]["name"] == name]
    return policy


def test_the_checker_catches_policies_that_cut_the_chat_or_open_it(
    with_policies: dict[str, list[dict[str, Any]]],
) -> None:
    # Guards the checker itself: each of these mistakes must show.
    cluster = Cluster("minikube", with_policies["minikube"])

    def mutated(name: str, change: Any) -> list[Policy]:
        policies = copy.deepcopy(cluster.policies)
        change(policy_named(policies, name)["spec"])
        return policies

    no_dns = [p for p in copy.deepcopy(cluster.policies) if p["metadata"]["name"] != "synergychat-dns"]
    assert any("DNS" in why for why in blocked(cluster, no_dns))

    wrong_port = mutated(
        "synergychat-api-to-crawler", lambda spec: spec["egress"][0]["ports"][0].update(port=80)
    )
    assert blocked(cluster, wrong_port) == ["api -> crawler (/stats)"]

    def misspell_namespace(spec: dict[str, Any]) -> None:
        spec["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] = {
            "kubernetes.io/metadata.name": "envoy-gateway"
        }

    assert set(blocked(cluster, mutated("synergychat-entry", misspell_namespace))) == {
        "the entry -> web",
        "the entry -> api",
    }

    def allow_everything_out(spec: dict[str, Any]) -> None:
        spec["egress"][0]["to"][0]["ipBlock"].pop("except")

    opened = let_through(cluster, mutated("synergychat-crawler-to-internet", allow_everything_out))
    assert set(opened) == {"crawler -> the metadata server", "crawler -> a private address"}

    def entry_from_anywhere(spec: dict[str, Any]) -> None:
        spec["ingress"][0].pop("from")

    assert "the internet -> web directly" in let_through(
        cluster, mutated("synergychat-entry", entry_from_anywhere)
    )


def test_the_checker_shows_the_scale_overlay_without_its_database_policies(
    with_policies: dict[str, list[dict[str, Any]]],
) -> None:
    # The scale overlay with ../ alone (the defect this sub-component fixes): exactly the
    # api's and the crawlers' way to PostgreSQL is cut, and the database pod itself is
    # open, since the default deny selects app.kubernetes.io/part-of, which the scale
    # overlay does not put on the StatefulSet's pods.
    cluster = Cluster("scale", with_policies["scale"])
    text = (POSTGRES_SUBCOMPONENT / "policies.yaml").read_text()
    names = {doc["metadata"]["name"] for doc in yaml.safe_load_all(text)}
    without = [p for p in cluster.policies if p["metadata"]["name"] not in names]
    assert len(without) == len(cluster.policies) - len(names) == len(cluster.policies) - 2
    assert blocked(cluster, without) == ["api -> PostgreSQL", "crawler -> PostgreSQL"]
    assert set(let_through(cluster, without)) == {
        "the entry -> PostgreSQL",
        "the internet -> PostgreSQL",
        "another app in the namespace -> PostgreSQL",
        "prometheus -> PostgreSQL (it has no metrics)",
        "PostgreSQL -> the internet",
    }

    # And its ingress rule guards the database: from anyone, the neighbour gets in.
    def from_anyone(spec: dict[str, Any]) -> None:
        spec["ingress"][0].pop("from")

    opened = copy.deepcopy(cluster.policies)
    from_anyone(policy_named(opened, "synergychat-postgres")["spec"])
    assert "another app in the namespace -> PostgreSQL" in let_through(cluster, opened)
