"""Static checks of what we ship for deployment: lint, render, validate, and wiring.

No container runs here: the Dockerfiles are linted, every overlay is rendered
and validated against real schemas, and the objects are followed the way a
cluster follows them (route -> Service -> port -> container), so a renamed port
or a misspelt env var fails here rather than in someone's cluster.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from yarl import URL

from synergychat.__main__ import SHUTDOWN_TIMEOUT_SECONDS

from .conftest import APP_UID, OVERLAYS, REPO, render, run, tool
from .gateway import route, rules_from
from .manifests import PORT_SETTING, Manifests, known_settings

GATEWAY_KINDS = {"GatewayClass", "Gateway", "HTTPRoute", "HealthCheckPolicy"}
GKE_GATEWAY_CLASS = "gke-l7-global-external-managed"
ENVOY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
IMAGE = "synergychat:0.1.0"
CLUSTER_SCOPED = {"Namespace", "GatewayClass"}


@pytest.fixture(scope="module")
def gateway_validator() -> jsonschema.protocols.Validator:
    schema = yaml.safe_load((Path(__file__).parent / "gateway_schema.yaml").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def manifests(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> Manifests:
    return Manifests(rendered[overlay])


# ---- lint, render, validate ---------------------------------------------------


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/nginx/Dockerfile"])
def test_hadolint(dockerfile: str) -> None:
    result = run([tool("hadolint"), "--no-color", dockerfile], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    kinds = {doc["kind"] for doc in rendered[overlay]}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap"} <= kinds


def test_base_renders_on_its_own() -> None:
    assert render(REPO / "k8s" / "base")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_kinds_pass_strict_schema_validation(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    core = [doc for doc in rendered[overlay] if doc["kind"] not in GATEWAY_KINDS]
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(core))
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.30", "--quiet", str(path)], check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "ERROR" not in output, output
    # kubernetes-validate passes kinds it has no schema for: none may slip through that way.
    assert "Couldn't find schema" not in output, output


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_objects_match_their_schema(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, gateway_validator: Any
) -> None:
    for doc in rendered[overlay]:
        if doc["kind"] in GATEWAY_KINDS:
            gateway_validator.validate(doc)


def test_gateway_schema_rejects_typos(
    rendered: dict[str, list[dict[str, Any]]], gateway_validator: Any
) -> None:
    # Guards the schema itself: a strict schema is the only reason to keep our own.
    (http_route,) = manifests(rendered, "gke").of_kind("HTTPRoute")
    typo = copy.deepcopy(http_route)
    typo["spec"]["rules"][0]["backendRef"] = typo["spec"]["rules"][0].pop("backendRefs")
    wrong_field = copy.deepcopy(http_route)
    wrong_field["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"]["replaceFullPath"] = "/"
    (policy, _) = manifests(rendered, "gke").of_kind("HealthCheckPolicy")
    bad_path = copy.deepcopy(policy)
    bad_path["spec"]["default"]["config"]["httpHealthCheck"]["requestPath"] = "healthz"
    for broken in (typo, wrong_field, bad_path):
        assert not gateway_validator.is_valid(broken)


# ---- one image, ROLE, known settings ------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_image_and_a_role_in_every_container(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = manifests(rendered, overlay)
    assert found.workloads
    for workload in found.workloads:
        for container in workload.containers:
            assert container["image"] == IMAGE, f"{workload.name}: {container['image']}"
            env = workload.env(container)
            assert env.get("ROLE") in ("web", "api", "crawler", "all"), (
                f"{workload.name}: ROLE={env.get('ROLE')}"
            )
            assert workload.pod_labels["app.kubernetes.io/component"] == env["ROLE"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_env_var_is_a_setting_of_its_role(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    # Catches a misspelt name, and a setting given to a role that never reads it
    # (API_URL on the api, CRAWLER_BASE_URL on web: silently ignored otherwise).
    for workload in manifests(rendered, overlay).workloads:
        env = workload.env()
        unknown = set(env) - known_settings(env["ROLE"])
        assert not unknown, f"{workload.name} (ROLE={env['ROLE']}) sets unknown variables {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_listen_port_is_the_container_port(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for workload in manifests(rendered, overlay).workloads:
        env = workload.env()
        listen = int(env.get(PORT_SETTING[env["ROLE"]], "8080"))
        assert workload.container_port("http") == listen, workload.name


# ---- wiring: routes -> Services -> pods ----------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_reaches_one_workload_port(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = manifests(rendered, overlay)
    for service in found.of_kind("Service"):
        assert service["spec"]["selector"] == {"app": service["metadata"]["labels"]["app"]}
        for port in service["spec"]["ports"]:
            assert port["port"] == 80, "Services listen on 80, as the course's do"
            found.service_backend(service["metadata"]["name"], port["port"])


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_routes_reach_containers_through_services(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = manifests(rendered, overlay)
    gateways = {doc["metadata"]["name"]: doc for doc in found.of_kind("Gateway")}
    classes = {doc["metadata"]["name"] for doc in found.of_kind("GatewayClass")} | {GKE_GATEWAY_CLASS}
    for gateway in gateways.values():
        assert gateway["spec"]["gatewayClassName"] in classes
    routes = found.of_kind("HTTPRoute")
    assert routes
    for http_route in routes:
        for parent in http_route["spec"]["parentRefs"]:
            gateway = gateways[parent["name"]]
            listeners = {listener["name"] for listener in gateway["spec"]["listeners"]}
            assert parent.get("sectionName", next(iter(listeners))) in listeners
    for _, ref in found.backend_refs():
        workload, port = found.service_backend(ref["name"], ref["port"])
        assert port == workload.container_port("http")


def api_url_target(found: Manifests, page_url: str) -> tuple[str, str]:
    """Where the browser's API_URL lands: (role of the workload, path the api sees for /messages)."""
    api_url = found.workload_of_role("web").env()["API_URL"]
    messages = URL(page_url).join(URL(api_url.rstrip("/") + "/messages"))
    rule_and_path = route(rules_from(found.of_kind("HTTPRoute")), messages.host or "", messages.path)
    assert rule_and_path is not None, f"no route for {messages}"
    rule, path = rule_and_path
    assert rule.service is not None, f"the route for {messages} has no backend"
    workload, _ = found.service_backend(rule.service, rule.port)
    return workload.role, path


def test_minikube_routes_by_host_name(rendered: dict[str, list[dict[str, Any]]]) -> None:
    found = manifests(rendered, "minikube")
    (gateway_class,) = found.of_kind("GatewayClass")
    assert gateway_class["spec"]["controllerName"] == ENVOY_CONTROLLER
    hosts = {}
    for http_route in found.of_kind("HTTPRoute"):
        for host in http_route["spec"]["hostnames"]:
            for _, ref in [
                (http_route, ref)
                for rule in http_route["spec"]["rules"]
                for ref in rule.get("backendRefs", ())
            ]:
                hosts[host] = found.service_backend(ref["name"], ref["port"])[0].role
    assert hosts == {"synergychat.internal": "web", "synergychatapi.internal": "api"}
    assert found.workload_of_role("web").env()["API_URL"] == "http://synergychatapi.internal"
    # The page's API_URL, resolved by the browser, is the api's route, unprefixed.
    assert api_url_target(found, "http://synergychat.internal/") == ("api", "/messages")


def test_gke_routes_by_path_and_strips_api(rendered: dict[str, list[dict[str, Any]]]) -> None:
    found = manifests(rendered, "gke")
    (gateway,) = found.of_kind("Gateway")
    assert gateway["spec"]["gatewayClassName"] == GKE_GATEWAY_CLASS
    assert found.workload_of_role("web").env()["API_URL"] == "/api"
    rules = rules_from(found.of_kind("HTTPRoute"))
    expectations = {
        "/": ("web", "/"),
        "/app.js": ("web", "/app.js"),
        "/api": ("api", "/"),
        "/api/messages": ("api", "/messages"),
        "/api/messages/stream": ("api", "/messages/stream"),
        "/apiary": ("web", "/apiary"),
    }
    for path, (role, backend_path) in expectations.items():
        rule_and_path = route(rules, "synergychat.example", path)
        assert rule_and_path is not None, path
        rule, seen = rule_and_path
        assert rule.service is not None, path
        assert (found.service_backend(rule.service, rule.port)[0].role, seen) == (role, backend_path), path
    assert api_url_target(found, "http://203.0.113.7/") == ("api", "/messages")


def test_gke_health_checks_use_healthz(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # The load balancer probes GET / unless told otherwise; every routed Service needs a policy.
    found = manifests(rendered, "gke")
    routed = {ref["name"] for _, ref in found.backend_refs()}
    policies = {}
    for policy in found.of_kind("HealthCheckPolicy"):
        config = policy["spec"]["default"]["config"]
        assert config["type"] == "HTTP"
        policies[policy["spec"]["targetRef"]["name"]] = config["httpHealthCheck"]["requestPath"]
    assert policies == {name: "/healthz" for name in routed} and set(policies) == {
        "api-service",
        "web-service",
    }


def test_gke_everything_in_its_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for doc in rendered["gke"]:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "synergychat"
        elif doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == "synergychat", (
                f"{doc['kind']} {doc['metadata']['name']}"
            )


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_crawler_base_url_names_the_crawler_service(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = manifests(rendered, overlay)
    url = URL(found.workload_of_role("api").env()["CRAWLER_BASE_URL"])
    assert url.scheme == "http" and url.host
    # Resolved inside the cluster: a Service name of this namespace, on one of its ports.
    workload, _ = found.service_backend(url.host, url.port or 80)
    assert workload.role == "crawler"


def test_all_in_one_is_one_pod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    found = manifests(rendered, "all-in-one")
    (workload,) = found.workloads
    env = workload.env()
    assert env["ROLE"] == "all"
    # Co-located: the api calls the crawler in process, and the page finds the api under /api.
    assert "CRAWLER_BASE_URL" not in env and "API_URL" not in env


# ---- pods: hardened, sized, probed, persistent ------------------------------------


def dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert match, f"Dockerfile has no ARG {name}"
    return match.group(1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    assert int(dockerfile_arg("UID")) == APP_UID and int(dockerfile_arg("GID")) == APP_UID
    found = manifests(rendered, overlay)
    for workload in found.workloads:
        pod_security = workload.pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert (pod_security["runAsUser"], pod_security["runAsGroup"], pod_security["fsGroup"]) == (
            APP_UID,
        ) * 3
        account = found.get("ServiceAccount", workload.pod["serviceAccountName"])
        assert account["automountServiceAccountToken"] is False
        for container in workload.containers:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_have_requests_limits_and_probes(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for workload in manifests(rendered, overlay).workloads:
        # Longer than the app's shutdown timeout, so in-flight requests finish before SIGKILL.
        assert workload.pod.get("terminationGracePeriodSeconds", 30) > SHUTDOWN_TIMEOUT_SECONDS
        for container in workload.containers:
            for kind in ("requests", "limits"):  # GKE Autopilot demands requests
                assert set(container["resources"][kind]) == {"cpu", "memory"}, workload.name
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                http_get = container[probe]["httpGet"]
                assert http_get["path"] == path
                workload.container_port(http_get["port"])


PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
# Kubernetes waits 1 s for a probe unless told otherwise; the api's /readyz may
# wait that long on a slow crawler alone, and any answer can be slow under load.
MIN_PROBE_TIMEOUT_SECONDS = 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_allow_slow_answers(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for workload in manifests(rendered, overlay).workloads:
        for container in workload.containers:
            probes = {kind: container[kind] for kind in PROBES if kind in container}
            assert {"livenessProbe", "readinessProbe"} <= set(probes), f"{workload.name}: {sorted(probes)}"
            for kind, probe in probes.items():
                where = f"{workload.name}/{container['name']} {kind}"
                # Every knob explicit: the defaults (1 s timeout) are what QA tripped over.
                assert {"timeoutSeconds", "periodSeconds", "failureThreshold"} <= set(probe), where
                assert probe["timeoutSeconds"] >= MIN_PROBE_TIMEOUT_SECONDS, where
                # A probe ends before the next one is due.
                assert probe["timeoutSeconds"] < probe["periodSeconds"], where
                # One slow or lost answer never restarts a container or takes it out of its Service.
                assert probe["failureThreshold"] >= 2, where
            # Restarting is the heavier hand: liveness gives up no sooner than readiness.
            liveness, readiness = probes["livenessProbe"], probes["readinessProbe"]
            assert (
                liveness["periodSeconds"] * liveness["failureThreshold"]
                >= readiness["periodSeconds"] * readiness["failureThreshold"]
            ), workload.name


def mount_of(workload: Any, path: str) -> dict[str, Any] | None:
    mounts = workload.container["volumeMounts"]
    covering = [
        m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    return max(covering, key=lambda m: len(m["mountPath"]), default=None)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_paths_are_volumes(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    # The root filesystem is read-only: the databases and /tmp must sit on volumes.
    found = manifests(rendered, overlay)
    for workload in found.workloads:
        volumes = {volume["name"]: volume for volume in workload.pod["volumes"]}
        for mount in workload.container["volumeMounts"]:
            assert mount["name"] in volumes, f"{workload.name}: mount of unknown volume {mount['name']}"
        env = workload.env()
        paths = ["/tmp"] + [env[key] for key in ("API_DB_FILEPATH", "CRAWLER_DB_PATH") if env.get(key)]
        for path in paths:
            mount = mount_of(workload, path)
            assert mount is not None, f"{workload.name}: {path} is on the read-only root filesystem"
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                found.get("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_database_is_on_a_claim_with_one_writer(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    found = manifests(rendered, overlay)
    for workload in found.workloads:
        env = workload.env()
        if env["ROLE"] not in ("api", "all"):
            continue
        mount = mount_of(workload, env["API_DB_FILEPATH"])
        assert mount is not None
        (volume,) = [v for v in workload.pod["volumes"] if v["name"] == mount["name"]]
        assert "persistentVolumeClaim" in volume, "messages must outlive the pod"
        # SQLite and a ReadWriteOnce claim: never two pods at once, even during a rollout.
        assert workload.deployment["spec"]["replicas"] == 1
        assert workload.deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_web_scales_with_an_hpa(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    found = manifests(rendered, overlay)
    (hpa,) = found.of_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    web = found.workload_of_role("web")
    assert (target["kind"], target["name"]) == ("Deployment", web.name)
    # A fixed replica count would fight the autoscaler on every apply.
    assert "replicas" not in web.deployment["spec"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


@pytest.mark.parametrize("overlay", ["minikube", "gke"])
def test_only_the_api_reaches_the_crawler(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    found = manifests(rendered, overlay)
    (policy,) = found.of_kind("NetworkPolicy")
    spec = policy["spec"]
    crawler = found.workload_of_role("crawler")
    assert found.selected(spec["podSelector"]["matchLabels"]) == [crawler]
    assert spec["policyTypes"] == ["Ingress"]
    rule, metrics_rule = spec["ingress"]
    (source,) = rule["from"]
    assert [w.role for w in found.selected(source["podSelector"]["matchLabels"])] == ["api"]
    for port in rule["ports"] + metrics_rule["ports"]:
        crawler.container_port(port["port"])
    # Prometheus scrapes it from its namespace: a namespace, none of our pods
    # (test_network_policy.py follows both rules the way Kubernetes does).
    (scraper,) = metrics_rule["from"]
    assert set(scraper) == {"namespaceSelector"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_recommended_labels(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for doc in rendered[overlay]:
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']} {doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name") == "synergychat", where
        assert labels.get("app.kubernetes.io/part-of") == "synergychat", where
        if doc["kind"] not in GATEWAY_KINDS | CLUSTER_SCOPED:
            # A workload's own objects also say whose they are.
            assert "app.kubernetes.io/component" in labels and "app" in labels, where
    for workload in Manifests(rendered[overlay]).workloads:
        app = workload.deployment["metadata"]["labels"]["app"]
        assert workload.deployment["spec"]["selector"] == {"matchLabels": {"app": app}}
        assert workload.pod_labels["app"] == app


# ---- compose ------------------------------------------------------------------------


def compose_config(*files: str) -> dict[str, Any]:
    args = [tool("podman-compose")]
    for file in files:
        args += ["-f", str(REPO / file)]
    config: dict[str, Any] = yaml.safe_load(run([*args, "config"]).stdout)
    return config


@pytest.mark.parametrize(
    "files", [("compose.yaml",), ("compose.yaml", "compose.nginx.yaml")], ids=["network", "nginx"]
)
def test_compose_services_are_wired(files: tuple[str, ...]) -> None:
    services = compose_config(*files)["services"]
    app_services = {name: s for name, s in services.items() if name != "nginx"}
    assert set(app_services) == {"web", "api", "crawler"}
    assert len({s["image"] for s in app_services.values()}) == 1, "one image for every role"
    for name, service in app_services.items():
        env = service["environment"]
        assert env["ROLE"] == name
        assert set(env) <= known_settings(name), f"{name}: {sorted(set(env) - known_settings(name))}"
        assert service.get("read_only") is True
    assert not app_services["crawler"].get("ports"), "the crawler publishes no port"
    crawler_url = URL(app_services["api"]["environment"]["CRAWLER_BASE_URL"])
    assert crawler_url.host == "crawler" and crawler_url.port == int(
        services["crawler"]["environment"]["CRAWLER_PORT"]
    )
    assert any(v.endswith(":/data") for v in app_services["api"]["volumes"]), "the api's database on a volume"
    api_url = app_services["web"]["environment"]["API_URL"]
    if "nginx" in services:
        assert api_url == "/api/"
        assert not app_services["web"].get("ports") and not app_services["api"].get("ports")
    else:
        assert api_url == "http://localhost:8081"
        assert any(p.endswith(":8081:8080") for p in app_services["api"]["ports"])


def test_nginx_upstreams_are_compose_services() -> None:
    services = compose_config("compose.yaml", "compose.nginx.yaml")["services"]
    config = (REPO / "deploy" / "nginx" / "synergychat.conf").read_text()
    upstreams = re.findall(r"proxy_pass http://([a-z]+):(\d+)(\S*);", config)
    assert {host for host, _, _ in upstreams} == {"api", "web"}
    for host, port, _ in upstreams:
        assert int(services[host]["environment"][PORT_SETTING[host]]) == int(port)
    # /api/ is stripped (the trailing slash of proxy_pass); the stream is unbuffered.
    assert re.search(r"location /api/ \{\s*proxy_pass http://api:8080/;", config)
    stream = re.search(r"location /api/messages/stream \{(.*?)\}", config, re.DOTALL)
    assert stream and "proxy_buffering off;" in stream.group(1)


def test_deploy_doc_names_the_urls_we_ship(rendered: dict[str, list[dict[str, Any]]]) -> None:
    doc = (REPO / "docs" / "DEPLOY.md").read_text()
    for value in (
        "http://localhost:8081",
        "http://crawler:8080",
        "/api/",
        "http://synergychatapi.internal",
        "http://crawler-service",
        "DOCTOR.md",
        "HealthCheckPolicy",
    ):
        assert value in doc, value
