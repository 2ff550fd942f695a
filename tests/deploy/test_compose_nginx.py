"""The nginx shape (3) end to end: podman-compose up, then chat only through HTTPS.

compose.yaml + compose.nginx.yaml exactly as shipped, plus a test file that
adds the fake Gutendex and points the crawler at it. The test then uses
https://127.0.0.1:PORT/ alone, as a browser would (the certificate is
self-signed: not verified).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from .chat import ChatBrowser, chat_end_to_end
from .conftest import (
    APP_UID,
    FAKE_GUTENDEX_PORT,
    GUTENDEX_ENV,
    HERE,
    NGINX_IMAGE,
    OWNER,
    REPO,
    compose_up,
    free_port,
    run,
    tool,
    wait_ready,
)

pytestmark = pytest.mark.container


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def nginx_stack(
    podman_env: dict[str, str], app_image: str, base_image: str, tmp_path: Path
) -> Iterator[tuple[int, int, str]]:
    """The stack up under a unique project name: (http port, https port) on 127.0.0.1, project."""
    certs = tmp_path / "certs"
    run(["bash", str(REPO / "scripts" / "make-cert.sh"), str(certs), "127.0.0.1", "localhost"])
    test_file = tmp_path / "compose.test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "crawler": {"environment": GUTENDEX_ENV},
                    "gutendex": {
                        "image": app_image,
                        "entrypoint": ["python3", "/fake/fake_gutendex.py", str(FAKE_GUTENDEX_PORT)],
                        "volumes": [f"{HERE / 'fake_gutendex.py'}:/fake/fake_gutendex.py:ro"],
                    },
                }
            }
        )
    )
    http_port, https_port = free_port(), free_port()
    env = {
        **podman_env,
        "SYNERGYCHAT_IMAGE": app_image,
        "NGINX_IMAGE": NGINX_IMAGE,
        "NGINX_BASE_IMAGE": base_image,
        "NGINX_HOST_IP": "127.0.0.1",
        "HTTP_HOST_PORT": str(http_port),
        "HTTPS_HOST_PORT": str(https_port),
        "CERT_DIR": str(certs),
    }
    project = f"{OWNER}nginx"
    files = (REPO / "compose.yaml", REPO / "compose.nginx.yaml", test_file)
    with compose_up(project, files, env, log_lines=40):
        yield http_port, https_port, project


def container_of(project: str, service: str) -> str:
    return f"{project}_{service}_1"


def run_healthcheck_until_healthy(podman_env: dict[str, str], container: str, timeout: float = 60) -> str:
    """Run the container's healthcheck as the engine would, until it passes: the last output.

    Healthchecks never fire by themselves here (podman runs them from systemd timers,
    and there is no systemd), so the test runs them, the very command compose set.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = run([tool("podman"), "healthcheck", "run", container], env=podman_env, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result.stdout + result.stderr
        time.sleep(1)


def check_health_and_start_order(podman_env: dict[str, str], project: str) -> None:
    started = {}
    for service in ("crawler", "api", "web", "nginx"):
        container = container_of(project, service)
        inspected = run(
            [
                tool("podman"),
                "inspect",
                "--format",
                "{{json .Config.Healthcheck}} {{.State.StartedAt.UnixNano}}",
                container,
            ],
            env=podman_env,
        ).stdout
        healthcheck, started_at = inspected.rsplit(" ", 1)
        started[service] = int(started_at)
        assert json.loads(healthcheck)["Test"][0] == "CMD", (service, healthcheck)
        output = run_healthcheck_until_healthy(podman_env, container)
        status = run(
            [tool("podman"), "inspect", "--format", "{{.State.Health.Status}}", container], env=podman_env
        ).stdout.strip()
        assert status == "healthy", f"{service}: {status}: {output}"
    # depends_on: each started after what it depends on (crawler -> api -> web -> nginx).
    assert started["crawler"] < started["api"] < started["web"] < started["nginx"], started


async def test_chat_through_nginx_over_https(
    nginx_stack: tuple[int, int, str], podman_env: dict[str, str]
) -> None:
    http_port, https_port, project = nginx_stack
    entry = f"https://127.0.0.1:{https_port}"
    wait_ready(f"{entry}/api/readyz", timeout=90, crawler=True)
    wait_ready(f"{entry}/readyz")
    # Every service's healthcheck passes with the command compose gave it, in the image it runs.
    check_health_and_start_order(podman_env, project)

    # Port 80 only redirects, keeping the path (to 443: the public HTTPS port).
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"http://127.0.0.1:{http_port}/some/page?x=1", timeout=5)
    with redirect.value as response:
        assert response.code == 301
        assert response.headers["Location"] == "https://127.0.0.1/some/page?x=1"

    # The certificate is ours, and only TLS reaches the app.
    pem = ssl.get_server_certificate(("127.0.0.1", https_port))
    assert "BEGIN CERTIFICATE" in pem

    # nginx is the single entry: no other container publishes a port.
    listing = run(
        [
            tool("podman"),
            "ps",
            "--filter",
            f"label=io.podman.compose.project={project}",
            "--format",
            "{{.Names}} {{.Ports}}",
        ],
        env=podman_env,
    ).stdout.splitlines()
    published = {line.split()[0] for line in listing if "->" in line}
    assert len(listing) == 5 and published == {f"{project}_nginx_1"}, listing
    # compose.yaml's read_only reaches podman, and the image's non-root user stays.
    for service in ("web", "api", "crawler"):
        container = f"{project}_{service}_1"
        inspected = run(
            [
                tool("podman"),
                "inspect",
                "--format",
                "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
                container,
            ],
            env=podman_env,
        ).stdout.split()
        assert inspected == ["true", f"{APP_UID}:{APP_UID}"], (container, inspected)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        await chat_end_to_end(ChatBrowser(session), f"{entry}/", expected_api=f"{entry}/api/")

    # The crawler is information on the api's readiness, never a reason to be unhealthy:
    # with the crawler stopped, the api's healthcheck still passes (and /stats says why).
    run([tool("podman"), "stop", "-t", "2", container_of(project, "crawler")], env=podman_env)
    api_check = run(
        [tool("podman"), "healthcheck", "run", container_of(project, "api")], env=podman_env, check=False
    )
    assert api_check.returncode == 0, api_check.stdout + api_check.stderr
