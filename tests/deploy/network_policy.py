"""NetworkPolicy semantics, enough to say whether a connection between two endpoints is allowed.

The rules Kubernetes documents (and every enforcing plugin implements): a pod
that some policy selects for a direction is isolated in that direction, and then
only what a rule of such a policy allows gets through; policies add up; a
connection needs the source's egress and the destination's ingress. Peers are
pods (``podSelector``, in the policy's namespace unless a ``namespaceSelector``
says otherwise) or addresses (``ipBlock``); ports are numbers, ranges or the
destination pod's port names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .manifests import Workload

Policy = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """A pod (``namespace`` set) or an address outside the cluster (``namespace`` None)."""

    name: str
    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    # Named container ports, which a policy's port names resolve against.
    ports: Mapping[str, int] = field(default_factory=dict)


def cluster_pod(name: str, ip: str, namespace: str, labels: Mapping[str, str]) -> Endpoint:
    # Every namespace carries its name as a label (Kubernetes 1.22 and later).
    return Endpoint(name, ip, namespace, labels, {"kubernetes.io/metadata.name": namespace})


def workload_pod(workload: Workload, ip: str) -> Endpoint:
    namespace = workload.deployment["metadata"].get("namespace", "default")
    ports = {
        port["name"]: port["containerPort"]
        for container in workload.containers
        for port in container.get("ports", ())
        if "name" in port
    }
    return Endpoint(
        workload.name,
        ip,
        namespace,
        workload.pod_labels,
        {"kubernetes.io/metadata.name": namespace},
        ports,
    )


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector; the empty one matches everything."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", ()):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def namespace_of(policy: Policy) -> str:
    return str(policy["metadata"].get("namespace", "default"))


def in_block(ip: str, block: Mapping[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(block["cidr"])
    if address.version != network.version or address not in network:
        return False
    return not any(
        address in ipaddress.ip_network(excepted)
        for excepted in block.get("except", ())
        if ipaddress.ip_network(excepted).version == address.version
    )


def peer_matches(peer: Mapping[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return in_block(other.ip, peer["ipBlock"])
    if other.namespace is None:
        return False  # an address outside the cluster is matched by ipBlocks only
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        namespace_ok = other.namespace == policy_namespace
    else:
        namespace_ok = selector_matches(namespace_selector, other.namespace_labels)
    return namespace_ok and selector_matches(peer.get("podSelector", {}), other.labels)


def port_matches(ports: Sequence[Mapping[str, Any]] | None, port: int, protocol: str, dest: Endpoint) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        value = entry.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            if dest.ports.get(value) == port:
                return True
        elif value <= port <= entry.get("endPort", value):
            return True
    return False


def policy_types(policy: Policy) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def selects(policy: Policy, endpoint: Endpoint) -> bool:
    return endpoint.namespace == namespace_of(policy) and selector_matches(
        policy["spec"]["podSelector"], endpoint.labels
    )


def direction_allows(
    policies: Sequence[Policy], endpoint: Endpoint, other: Endpoint, direction: str, port: int, protocol: str
) -> bool:
    """Whether ``endpoint``'s policies let the connection through in ``direction``."""
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    dest = endpoint if direction == "Ingress" else other
    isolating = [p for p in policies if selects(p, endpoint) and direction in policy_types(p)]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(rules_key) or ():
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_matches(peer, other, namespace_of(policy)) for peer in peers)
            if peer_ok and port_matches(rule.get("ports"), port, protocol, dest):
                return True
    return False


def allowed(
    policies: Sequence[Policy], source: Endpoint, dest: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether ``source`` may open a connection to ``dest`` on ``port``."""
    return direction_allows(policies, source, dest, "Egress", port, protocol) and direction_allows(
        policies, dest, source, "Ingress", port, protocol
    )
