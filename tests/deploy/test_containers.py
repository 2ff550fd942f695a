"""The image under podman: every role by ROLE, hardened, on a user network (shapes 1-2).

Each role runs as the image's non-root user with a read-only root filesystem,
all capabilities dropped and its database on a named volume; the api finds the
crawler by name on a network the test creates; the crawler reads a fake
Gutendex on that network.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from yarl import URL

from synergychat.version import version

from .chat import ChatBrowser, chat_end_to_end
from .conftest import APP_UID, GUTENDEX_ENV, Podman, get_json, wait_ready
from .manifests import Manifests

pytestmark = pytest.mark.container


def test_image_metadata(podman: Podman) -> None:
    (config,) = json.loads(podman("image", "inspect", podman.image).stdout)
    image = config["Config"]
    # No USER: started as root it takes over its data folders, then runs as APP_UID
    # (test_original_files.py); our compose file and manifests start it as APP_UID.
    assert image.get("User", "") in ("", "0", "root")
    assert image["Entrypoint"] == ["python3", "-m", "synergychat"]
    env = dict(item.split("=", 1) for item in image["Env"])
    assert env["ROLE"] == "all"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert "8080/tcp" in image["ExposedPorts"]
    # The label tells registries and scanners what `--version` tells a user: pyproject's version.
    assert image["Labels"]["org.opencontainers.image.version"] == version()


def test_version_and_probe_in_the_image(podman: Podman) -> None:
    # No ROLE and no data folder needed (the image's default ROLE is all; nothing is mounted).
    shown = podman("run", "--rm", "--read-only", "--cap-drop", "ALL", podman.image, "--version")
    assert shown.stdout == f"synergychat {version()}\n"
    # The compose healthchecks' command exists in the image and says unhealthy when nothing answers.
    probe = [
        "--entrypoint",
        "python3",
        podman.image,
        "-m",
        "synergychat",
        "probe",
        "http://127.0.0.1:8080/readyz",
    ]
    refused = podman("run", "--rm", "--read-only", *probe, check=False)
    assert refused.returncode == 1 and "no answer" in refused.stderr


def test_data_is_writable_by_group_0_and_nothing_is_world_writable(podman: Podman) -> None:
    # OpenShift's convention: the image's user owns /data and group 0 has the owner's
    # rights, so an arbitrary uid run in group 0 can write there too; others cannot.
    stat = podman("run", "--rm", "--entrypoint", "stat", podman.image, "-c", "%u:%g %A", "/data")
    assert stat.stdout.split() == [f"{APP_UID}:0", "drwxrwxr-x"]
    # Sticky shared folders (/tmp) aside, no directory anyone may write into
    # (searched as root, which can look into every folder).
    find = ["/", "-xdev", "-type", "d", "-perm", "-o+w", "!", "-perm", "-1000"]
    world_writable = podman("run", "--rm", "--user", "0", "--entrypoint", "find", podman.image, *find)
    assert world_writable.stdout.split() == []


def test_a_bad_role_stops_with_one_clear_line(podman: Podman) -> None:
    result = podman("run", "--rm", "--read-only", "-e", "ROLE=chef", podman.image, check=False)
    assert result.returncode == 2
    assert "unknown role 'chef'" in result.stderr


def assert_hardened(podman: Podman, container: str) -> None:
    assert podman("exec", container, "id", "-u").stdout.strip() == str(APP_UID)
    # The root filesystem is read-only; the data volume is writable by the app's user.
    denied = podman("exec", container, "touch", "/app/written", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    podman("exec", container, "touch", "/data/written")
    podman("exec", container, "rm", "/data/written")


async def test_roles_on_a_user_network(podman: Podman) -> None:
    network = podman.network()
    podman.fake_gutendex(network)
    crawler, _ = podman.app(
        "crawler",
        "crawler",
        network,
        env={"CRAWLER_DB_PATH": "/data", **GUTENDEX_ENV},
        volumes={podman.volume("crawler-data"): "/data"},
        publish=False,
        alias="crawler",
    )
    api_data = podman.volume("api-data")
    api_env = {"API_DB_FILEPATH": "/data/db/messages.db", "CRAWLER_BASE_URL": "http://crawler:8080"}
    api, api_port = podman.app("api", "api", network, env=api_env, volumes={api_data: "/data"})
    web, web_port = podman.app("web", "web", network, env={"API_URL": f"http://127.0.0.1:{api_port}"})

    ready = wait_ready(f"http://127.0.0.1:{api_port}/readyz", describe=podman.logs, crawler=True)
    # The api's public readiness names no address (its log does): a state only.
    assert ready["checks"]["crawler"]["state"] == "ok" and "location" not in ready["checks"]["crawler"]
    wait_ready(f"http://127.0.0.1:{web_port}/readyz", describe=podman.logs)
    for container in (crawler, api):
        assert_hardened(podman, container)
    assert podman("exec", web, "id", "-u").stdout.strip() == str(APP_UID)

    page = f"http://127.0.0.1:{web_port}/"
    async with aiohttp.ClientSession() as session:
        browser = ChatBrowser(session)
        await chat_end_to_end(browser, page, expected_api=f"http://127.0.0.1:{api_port}/")
        # The page calls the api cross-origin: the api must allow the page's origin.
        origin = f"http://127.0.0.1:{web_port}"
        response, _ = await browser.request(
            "GET", URL(f"http://127.0.0.1:{api_port}/messages"), headers={"Origin": origin}
        )
        assert response.headers.get("Access-Control-Allow-Origin") in (origin, "*")
        before = await browser.messages(URL(f"http://127.0.0.1:{api_port}/"))

    # A new api container on the same volume has every message.
    podman("rm", "-f", "-t", "5", api)
    _, api_port = podman.app("api-2", "api", network, env=api_env, volumes={api_data: "/data"})
    wait_ready(f"http://127.0.0.1:{api_port}/readyz", describe=podman.logs)
    status, after = get_json(f"http://127.0.0.1:{api_port}/messages")
    assert status == 200
    assert [m["Text"] for m in after] == [m["Text"] for m in before]


async def test_all_roles_in_one_container(podman: Podman) -> None:
    # ROLE unset: the image defaults to all; the page finds the api under /api/ on the same port.
    network = podman.network()
    podman.fake_gutendex(network)
    env = {"API_DB_FILEPATH": "/data/messages.db", "CRAWLER_DB_PATH": "/data/crawler", **GUTENDEX_ENV}
    container, port = podman.app("all", None, network, env=env, volumes={podman.volume("all-data"): "/data"})
    wait_ready(f"http://127.0.0.1:{port}/api/readyz", describe=podman.logs)
    assert_hardened(podman, container)
    async with aiohttp.ClientSession() as session:
        await chat_end_to_end(
            ChatBrowser(session), f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/api/"
        )


async def test_the_api_runs_as_an_arbitrary_uid_in_group_0(podman: Podman) -> None:
    # OpenShift's restricted policy: a uid from the namespace's range, group 0, a fresh
    # volume at /data, and a database folder the app creates itself.
    network = podman.network()
    data = podman.volume("uid-data")
    env = {"API_DB_FILEPATH": "/data/api/m.db"}
    api, port = podman.app("uid-api", "api", network, env=env, volumes={data: "/data"}, user="12345:0")
    wait_ready(f"http://127.0.0.1:{port}/readyz", describe=podman.logs)
    assert podman("exec", api, "id", "-u").stdout.strip() == "12345"
    async with aiohttp.ClientSession() as session:
        browser = ChatBrowser(session)
        posted = await browser.post(URL(f"http://127.0.0.1:{port}/"), "openshift", "written as uid 12345")
    assert "written as uid 12345" in [m["Text"] for m in posted]

    # Kept: a new container on the volume, as the same uid (OpenShift keeps a
    # namespace's uid across pods), reads it back.
    podman("rm", "-f", "-t", "5", api)
    _, port = podman.app("uid-api-2", "api", network, env=env, volumes={data: "/data"}, user="12345:0")
    wait_ready(f"http://127.0.0.1:{port}/readyz", describe=podman.logs)
    status, messages = get_json(f"http://127.0.0.1:{port}/messages")
    assert status == 200
    assert "written as uid 12345" in [m["Text"] for m in messages]


# Accepts connections and never answers: a crawler stuck on a huge book, or a dead node.
HUNG_SERVER = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = socket.create_server(("", 8080), backlog=64)
time.sleep(3600)
"""


def test_a_hung_crawler_keeps_the_api_ready_within_its_probe_timeout(
    podman: Podman, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    # The crawler is information on the api's /readyz, never a reason to take the api out
    # of its Service: the answer must come, 200, before the kubelet's probe gives up.
    probe = Manifests(rendered["minikube"]).workload_of_role("api").container["readinessProbe"]
    probe_timeout = probe.get("timeoutSeconds", 1)  # Kubernetes' default
    network = podman.network()
    hung = ["--network", network, "--network-alias", "crawler", "--read-only", "--entrypoint", "python3"]
    podman.container("hung-crawler", *hung, command=["-c", HUNG_SERVER])
    env = {"API_DB_FILEPATH": "/data/messages.db", "CRAWLER_BASE_URL": "http://crawler:8080"}
    _, port = podman.app("api", "api", network, env=env, volumes={podman.volume("api-data"): "/data"})
    url = f"http://127.0.0.1:{port}/readyz"
    wait_ready(url, timeout=60, describe=podman.logs)
    for _ in range(2):
        started = time.monotonic()
        status, body = get_json(url, timeout=probe_timeout)
        elapsed = time.monotonic() - started
        assert status == 200, body
        assert body["checks"]["crawler"]["ok"] is False, body
        assert elapsed < probe_timeout, f"/readyz took {elapsed:.2f} s, the probe waits {probe_timeout} s"
