"""The scale overlay (k8s/overlays/scale): rendered, validated, followed, then played.

Statically: strict schemas, every check the other overlays pass (hardening, probes,
labels, the pause before stopping, disruption budgets), and what this overlay is
for: the api scaled by an HPA from 2 with a rolling update that never lowers
capacity, several crawlers, both on PostgreSQL through a Secret, no SQLite volume
left, PostgreSQL as one StatefulSet on a claim template behind its Service; and the
external-database component dropping the bundled server.

For real, with ``podman kube play`` (test_kube_play.py says what it stands in for;
here also): the StatefulSet is played as a Deployment with its claim template made
a claim, since podman 4.3 plays no StatefulSet; Secret values are written into the
env, since podman 4.3 stores a played Secret in a form its own secretKeyRef can't
read ("secret ... is not valid JSON"); each replica is played as a pod of its own
(podman plays one pod per Deployment); the official postgres image is replaced by
one built from Debian's package (deploy/podman/postgres.Containerfile).
"""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from synergychat.settings import CrawlerSettings

from . import test_health_and_lifecycle as lifecycle
from . import test_static as static
from .chat import ChatBrowser, Entry, chat_end_to_end, wait_for_text
from .conftest import REPO, Podman, render, run, tool, wait_ready
from .gateway import rules_from, serve_gateway
from .manifests import Manifests, Workload, known_settings
from .test_kube_play import READY, PlayedWorkload, play, play_file
from .test_static import gateway_validator  # noqa: F401  (a fixture)

SCALE = REPO / "k8s" / "overlays" / "scale"
PLACEHOLDER = "CHANGE-ME-placeholder-password"
DATABASE_SERVICE = "postgres-service"
URL_SETTINGS = {"api": "API_DATABASE_URL", "crawler": "CRAWLER_DATABASE_URL"}
# The bundled server's objects, which the external-database component drops.
BUNDLED = {
    ("StatefulSet", "synergychat-postgres"),
    ("Service", DATABASE_SERVICE),
    ("ServiceAccount", "synergychat-postgres"),
    ("Secret", "synergychat-postgres"),
}


def crawler_reads_a_database() -> bool:
    """Whether this tree's crawler has CRAWLER_DATABASE_URL (being built beside this overlay)."""
    return "crawler_database_url" in CrawlerSettings.model_fields


@pytest.fixture(scope="module")
def scale() -> list[dict[str, Any]]:
    return render(SCALE)


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The overlay with its external-database component enabled, as docs/SCALE.md says."""
    k8s = tmp_path_factory.mktemp("scale") / "k8s"
    shutil.copytree(REPO / "k8s", k8s)
    kustomization = k8s / "overlays" / "scale" / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count("  # - external-database\n") == 1
    kustomization.write_text(text.replace("  # - external-database\n", "  - external-database\n"))
    return render(k8s / "overlays" / "scale")


def strictly_valid(docs: list[dict[str, Any]], path: Path) -> None:
    core = [doc for doc in docs if doc["kind"] not in static.GATEWAY_KINDS]
    path.write_text(yaml.safe_dump_all(core))
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.30", "--quiet", str(path)], check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "ERROR" not in output, output
    assert "Couldn't find schema" not in output, output


def database(found: Manifests) -> dict[str, Any]:
    (statefulset,) = found.of_kind("StatefulSet")
    return statefulset


def database_env(found: Manifests) -> dict[str, str]:
    """The server container's environment, through the same resolver as the roles'."""
    statefulset = database(found)
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return Workload(statefulset, found).env(container)


# ---- rendered and validated ------------------------------------------------------


def test_hadolint_postgres_containerfile() -> None:
    result = run([tool("hadolint"), "--no-color", "deploy/podman/postgres.Containerfile"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_renders_and_passes_strict_validation(scale: list[dict[str, Any]], tmp_path: Path) -> None:
    kinds = {doc["kind"] for doc in scale}
    assert {"StatefulSet", "Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget", "HTTPRoute"} <= kinds
    strictly_valid(scale, tmp_path / "scale.yaml")


def test_gateway_objects_match_their_schema(
    scale: list[dict[str, Any]],
    gateway_validator: Any,  # noqa: F811
) -> None:
    gateway = [doc for doc in scale if doc["kind"] in static.GATEWAY_KINDS]
    assert gateway
    for doc in gateway:
        gateway_validator.validate(doc)


# Every overlay's checks, on this one (each is written for the rendered objects of any overlay).
SHARED_CHECKS = [
    static.test_one_image_and_a_role_in_every_container,
    static.test_listen_port_is_the_container_port,
    static.test_pods_are_hardened,
    static.test_containers_have_requests_limits_and_probes,
    static.test_probes_allow_slow_answers,
    static.test_writable_paths_are_volumes,
    static.test_recommended_labels,
    lifecycle.test_serving_pods_pause_before_they_stop,
    lifecycle.test_disruption_budgets_keep_replicated_roles_serving_without_blocking_drains,
]


@pytest.mark.parametrize("check", SHARED_CHECKS, ids=lambda check: check.__name__)
def test_the_checks_of_every_overlay_hold(scale: list[dict[str, Any]], check: Any) -> None:
    check({"scale": scale}, "scale")


def test_every_env_var_is_a_setting_of_its_role(scale: list[dict[str, Any]]) -> None:
    for workload in Manifests(scale).workloads:
        env = workload.env()
        unknown = set(env) - known_settings(env["ROLE"])
        if not crawler_reads_a_database():
            unknown.discard("CRAWLER_DATABASE_URL")  # test_the_crawler_reads_its_url records that gap
        assert not unknown, f"{workload.name} (ROLE={env['ROLE']}) sets unknown variables {sorted(unknown)}"


@pytest.mark.xfail(
    not crawler_reads_a_database(),
    reason="the crawler's PostgreSQL store (CRAWLER_DATABASE_URL) is not in this tree yet",
    strict=True,
)
def test_the_crawler_reads_its_url() -> None:
    assert "CRAWLER_DATABASE_URL" in known_settings("crawler")


# ---- what the overlay is for ---------------------------------------------------------


def test_the_api_scales_out_and_rolls_without_losing_capacity(scale: list[dict[str, Any]]) -> None:
    found = Manifests(scale)
    api = found.workload_of_role("api")
    hpas = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in found.of_kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {api.name, found.workload_of_role("web").name}
    hpa = hpas[api.name]
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # A fixed count would fight the autoscaler on every apply.
    assert "replicas" not in api.deployment["spec"]
    # A new pod ready before an old one goes: never fewer than the HPA asked for.
    strategy = api.deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0 and strategy["rollingUpdate"]["maxSurge"] >= 1
    # Enough connections for every api pod the HPA may run, with PostgreSQL's default 100.
    pool = int(api.env()["API_DATABASE_POOL_SIZE"])
    assert hpa["spec"]["maxReplicas"] * (pool + 1) <= 80


def test_several_crawlers(scale: list[dict[str, Any]]) -> None:
    crawler = Manifests(scale).workload_of_role("crawler")
    assert crawler.deployment["spec"]["replicas"] >= 2
    assert crawler.deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_no_sqlite_volume_is_used(scale: list[dict[str, Any]]) -> None:
    found = Manifests(scale)
    # The only claim is the database's own, from its StatefulSet's template.
    assert not found.of_kind("PersistentVolumeClaim")
    for role, setting in (("api", "API_DB_FILEPATH"), ("crawler", "CRAWLER_DB_PATH")):
        workload = found.workload_of_role(role)
        assert setting not in workload.env(), f"{workload.name} still sets {setting}"
        assert {m["mountPath"] for m in workload.container["volumeMounts"]} == {"/tmp"}
        assert [v["name"] for v in workload.pod["volumes"]] == ["tmp"]


def test_the_database_urls_come_from_the_secret_and_lead_to_the_database(scale: list[dict[str, Any]]) -> None:
    found = Manifests(scale)
    server = database_env(found)
    for role, setting in URL_SETTINGS.items():
        workload = found.workload_of_role(role)
        (item,) = [item for item in workload.container["env"] if item["name"] == setting]
        assert "secretKeyRef" in item["valueFrom"], f"{workload.name}: {setting} is not from a Secret"
        url = URL(workload.env()[setting])
        assert url.scheme == "postgresql"
        # The Service in front of the server, on the port it forwards to the server's.
        assert url.host == DATABASE_SERVICE
        service = found.get("Service", DATABASE_SERVICE)
        (port,) = service["spec"]["ports"]
        assert url.port == port["port"]
        (container,) = database(found)["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"] if p["name"] == port["targetPort"]] == [
            port["port"]
        ]
        # The account the server creates on first start, and the database it makes.
        assert (url.user, url.password, url.path) == (
            server["POSTGRES_USER"],
            server["POSTGRES_PASSWORD"],
            "/" + server["POSTGRES_DB"],
        )
    # The placeholder says what it is, in the file people edit.
    assert server["POSTGRES_PASSWORD"] == PLACEHOLDER
    assert "PLACEHOLDER PASSWORD" in (SCALE / "kustomization.yaml").read_text()


def test_postgres_is_one_hardened_instance_on_a_claim(scale: list[dict[str, Any]]) -> None:
    found = Manifests(scale)
    statefulset = database(found)
    spec = statefulset["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == DATABASE_SERVICE
    service = found.get("Service", DATABASE_SERVICE)
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    # The official image on a real cluster (the tests put a local build in its place).
    assert container["image"].startswith("postgres:")
    (template,) = spec["volumeClaimTemplates"]
    # No storage class named: the cluster's default (minikube's standard) provisions it.
    assert "storageClassName" not in template["spec"]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/postgresql/data"] == template["metadata"]["name"]
    # PGDATA inside the mount: a fresh volume's root may hold lost+found.
    assert database_env(found)["PGDATA"].startswith("/var/lib/postgresql/data/")
    # Hardened like the roles, as the image's postgres user.
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == security["fsGroup"] == 999
    assert found.get("ServiceAccount", pod["serviceAccountName"])["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    emptydirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {mounts["/run/postgresql"], mounts["/tmp"]} <= emptydirs
    assert (
        set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
    )
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container[kind]
        assert "pg_isready" in " ".join(probe["exec"]["command"])
        assert probe["timeoutSeconds"] < probe["periodSeconds"] and probe["failureThreshold"] >= 2
    # SIGTERM would wait for every client to leave: a fast shutdown, within the grace period.
    assert "--mode=fast" in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert pod["terminationGracePeriodSeconds"] > 50


def test_the_external_database_component_drops_the_bundled_server(
    scale: list[dict[str, Any]], external: list[dict[str, Any]], tmp_path: Path
) -> None:
    strictly_valid(external, tmp_path / "external.yaml")

    def names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        # Generated names without their content hash, which changes with the URLs.
        return {
            (
                d["kind"],
                d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "Secret" else d["metadata"]["name"],
            )
            for d in docs
        }

    assert names(scale) - names(external) == BUNDLED
    assert names(external) <= names(scale)
    found = Manifests(external)
    for role, setting in URL_SETTINGS.items():
        url = URL(found.workload_of_role(role).env()[setting])
        assert url.host == "database-host" and url.query.get("sslmode") == "require", url

    # Nothing else changes but the Secret's name (its hash) where it is referenced.
    def without_secret_names(docs: list[dict[str, Any]]) -> list[str]:
        kept = [
            d for d in docs if d["kind"] != "Secret" and (d["kind"], d["metadata"]["name"]) not in BUNDLED
        ]
        text = yaml.safe_dump_all(sorted(kept, key=lambda d: (d["kind"], d["metadata"]["name"])))
        return [line for line in text.splitlines() if "synergychat-database-" not in line]

    assert without_secret_names(external) == without_secret_names(scale)


# ---- played with podman -----------------------------------------------------------------


class DatabaseWorkload(Workload):
    """The StatefulSet's pod, played as a Deployment's (its container sets no ROLE)."""

    @property
    def role(self) -> str:
        return "postgres"


def secrets_into_env(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every secretKeyRef replaced by its value (podman 4.3 can't read back a Secret it played)."""
    docs = copy.deepcopy(docs)
    found = Manifests(docs)
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for item in container.get("env", ()):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    item.pop("valueFrom")
                    item["value"] = found.secret_data(ref["name"])[ref["key"]]
    return docs


def statefulset_as_deployment(statefulset: dict[str, Any]) -> list[dict[str, Any]]:
    """The StatefulSet's one pod as a Deployment, and the claim Kubernetes would make for it."""
    deployment = copy.deepcopy(statefulset)
    deployment["kind"] = "Deployment"
    spec = deployment["spec"]
    spec.pop("serviceName")
    claims = []
    for template in spec.pop("volumeClaimTemplates"):
        # Kubernetes names it TEMPLATE-STATEFULSET-ORDINAL.
        name = f"{template['metadata']['name']}-{statefulset['metadata']['name']}-0"
        claims.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name},
                "spec": template["spec"],
            }
        )
        spec["template"]["spec"]["volumes"].append(
            {"name": template["metadata"]["name"], "persistentVolumeClaim": {"claimName": name}}
        )
    return [deployment, *claims]


def wait_for_postgres(podman: Podman, container: str, env: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        check = podman(
            "exec", container, "pg_isready", "--host=127.0.0.1",
            f"--username={env['POSTGRES_USER']}", f"--dbname={env['POSTGRES_DB']}", check=False,
        )  # fmt: skip
        if check.returncode == 0:
            return
        assert time.monotonic() < deadline, (
            f"PostgreSQL not ready in {timeout} s: {check.stdout}\n{podman.logs()}"
        )
        time.sleep(0.5)


@pytest.mark.container
async def test_the_scale_overlay_chats_across_replicas(
    podman: Podman, postgres_image: str, scale: list[dict[str, Any]], tmp_path: Path
) -> None:
    docs = secrets_into_env(scale)
    found = Manifests(docs)
    network = podman.network("scale-net")
    podman.fake_gutendex(network)

    # PostgreSQL first: the roles exit (and are restarted) until it answers.
    statefulset = database(found)
    database_docs = Manifests(
        [*statefulset_as_deployment(statefulset), found.get("Service", DATABASE_SERVICE)]
    )
    (deployment,) = database_docs.of_kind("Deployment")
    database_workload = DatabaseWorkload(deployment, database_docs)
    server = copy.copy(podman)  # the same cleanups and logs, another image
    server.image = postgres_image
    played_database = play_file(server, database_docs, database_workload, "scale", tmp_path)
    podman("kube", "play", "--network", f"{network}:alias={DATABASE_SERVICE}", str(played_database.file))
    podman.containers.extend(played_database.containers)
    wait_for_postgres(podman, played_database.containers[0], database_env(found))

    # As many pods as the overlay asks for at least: the HPA's minimum of api pods, the
    # crawlers' replicas (one while this tree's crawler keeps its counts in memory).
    (api_hpa,) = [
        h
        for h in found.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == found.workload_of_role("api").name
    ]
    counts = {"api": api_hpa["spec"]["minReplicas"], "web": 1}
    counts["crawler"] = found.workload_of_role("crawler").deployment["spec"]["replicas"]
    if not crawler_reads_a_database():
        print("the crawler has no CRAWLER_DATABASE_URL in this tree: one crawler, counting in memory")
        counts["crawler"] = 1
    played: dict[str, list[PlayedWorkload]] = {}
    for role in ("crawler", "api", "web"):
        # One pod per play (podman would publish every replica on the same host port).
        deployment = copy.deepcopy(found.workload_of_role(role).deployment)
        deployment["spec"]["replicas"] = 1
        workload = Workload(deployment, found)
        for number in range(counts[role]):
            pod = play_file(podman, found, workload, f"scale{number}", tmp_path)
            play(podman, found, found.workload_of_role(role), pod, network)  # its Services as aliases
            podman.containers.extend(pod.containers)
            played.setdefault(role, []).append(pod)
    for role, pods in played.items():
        path, crawler = READY[role]
        for pod in pods:
            wait_ready(pod.url(8080) + path, timeout=90, describe=podman.logs, crawler=crawler)
    for pod in played["api"] + played["crawler"]:
        (container,) = pod.containers
        # Nothing of the SQLite setup: no /data at all in these pods.
        assert podman("exec", container, "test", "-e", "/data/messages.db", check=False).returncode != 0

    rules = rules_from(found.of_kind("HTTPRoute"))
    backends = {}
    for rule in rules:
        if rule.service is None:
            continue  # answered by the gateway itself
        workload, port = found.service_backend(rule.service, rule.port)
        backends[(rule.service, rule.port)] = played[workload.role][0].url(port)
    first_api, second_api = (URL(pod.url(8080) + "/") for pod in played["api"][:2])
    async with serve_gateway(rules, backends) as gateway:
        hostnames = {h for r in found.of_kind("HTTPRoute") for h in r["spec"].get("hostnames", ())}
        async with aiohttp.ClientSession() as session:
            browser = ChatBrowser(session, Entry({host: gateway for host in hostnames}))
            # Page, post, the bot's /stats, the push channel: through the routes (to the first api).
            await chat_end_to_end(browser, "http://synergychat.internal/", "http://synergychatapi.internal/")
            direct = ChatBrowser(session)
            # A message posted to one replica reaches a stream open on the other.
            async with direct.stream(second_api) as pushed:
                text = f"across replicas {time.time()}"
                await direct.post(first_api, "carol", text)
                assert (await wait_for_text(pushed, text))["AuthorUsername"] == "carol"
            # One chat: both replicas answer the same history.
            history = await direct.messages(first_api)
            assert await direct.messages(second_api) == history
            # The first api's pod gone: the other still has every message.
            podman("kube", "down", str(played["api"][0].file))
            assert await direct.messages(second_api) == history
