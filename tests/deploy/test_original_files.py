"""The original's users switch by changing the image name (and adding ROLE), nothing else.

The files here are written the way the course's students write them for the
original images, not the way we would: no ``user:``, no ``securityContext``,
no ``fsGroup``, a compose bind mount the engine creates as root, a claim
mounted at ``/persist`` that already holds the original api's ``db.json``, two
crawler containers in one pod on one volume, ``imagePullPolicy: Always``. Each
gets our image and ``ROLE``; the pull policy is rewritten exactly as
docs/DEPLOY.md tells users of a locally built image to. Then each chats end to
end, ``/stats`` included, against the fake catalogue.

Test-only stand-ins, as in test_kube_play.py: the fake Gutendex
(``CRAWLER_SOURCE_URL``), ports published on 127.0.0.1, Service names as
network aliases, and the Service's port 80 written as the container's 8080
(kube-proxy's translation, which podman lacks).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .chat import ChatBrowser, chat_end_to_end
from .conftest import (
    APP_UID,
    FAKE_GUTENDEX_PORT,
    HERE,
    OWNER,
    Podman,
    free_port,
    get_json,
    run,
    tool,
    wait_ready,
)

pytestmark = pytest.mark.container

FAKE_CATALOGUE = f"http://gutendex:{FAKE_GUTENDEX_PORT}"
LOVE_MATCHES = 5  # fake_gutendex.MATCHES["love"]
ORIGINAL_MESSAGES = [
    {"AuthorUsername": "student", "Text": "hello from the Go version"},
    {"AuthorUsername": "crawler-bot", "Text": "Beep boop! I have found 42 matches so far"},
    {"AuthorUsername": "teacher", "Text": 'quotes "and" ünïcödé'},
]

# The original crawler's CRAWLER_DB_PATH: one file per keyword and book title.
ORIGINAL_COUNT_FILES = {
    "love.frankensteinorthemodernprometheus.json": (
        '{"Keyword":"love","BookTitle":"Frankenstein; Or, The Modern Prometheus","Count":96}'
    ),
    "hate.dracula.json": '{"Keyword":"hate","BookTitle":"Dracula","Count":41}',
}


def uids_of_pid_1(podman: Podman, container: str) -> list[str]:
    """Real, effective, saved and filesystem uid of the container's main process."""
    status = podman("exec", container, "cat", "/proc/1/status").stdout
    (line,) = [line for line in status.splitlines() if line.startswith("Uid:")]
    return line.split()[1:]


def owner_and_mode(path: Path) -> tuple[int, int, str]:
    info = path.stat()
    return info.st_uid, info.st_gid, stat.filemode(info.st_mode)


# ---- a course student's compose file ------------------------------------------------

STUDENT_COMPOSE = """\
services:
  synchat-web:
    image: {image}
    environment:
      ROLE: web
      WEB_PORT: "8080"
      API_URL: http://127.0.0.1:{api_port}
    ports:
      - "127.0.0.1:{web_port}:8080"
  synchat-api:
    image: {image}
    environment:
      ROLE: api
      API_PORT: "8080"
      API_DB_FILEPATH: /var/lib/synergychat/api/db.json
      CRAWLER_BASE_URL: http://synchat-crawler:8080
    volumes:
      - ./api-db:/var/lib/synergychat/api
    ports:
      - "127.0.0.1:{api_port}:8080"
  synchat-crawler:
    image: {image}
    environment:
      ROLE: crawler
      CRAWLER_PORT: "8080"
      CRAWLER_KEYWORDS: love,hate,joy,sadness,anger,disgust,fear,surprise
      CRAWLER_DB_PATH: /var/lib/synergychat/crawler/db
      CRAWLER_SOURCE_URL: {catalogue}
      CRAWLER_DELAY_SECONDS: "0"
    volumes:
      - ./crawler-db:/var/lib/synergychat/crawler/db
  gutendex:
    image: {image}
    entrypoint: ["python3", "/fake/fake_gutendex.py", "{catalogue_port}"]
    volumes:
      - {fake}:/fake/fake_gutendex.py:ro
"""


@pytest.fixture
def student_compose(
    podman_env: dict[str, str], app_image: str, tmp_path: Path
) -> Iterator[dict[str, object]]:
    folder = tmp_path / "synergychat"
    folder.mkdir()
    web_port, api_port = free_port(), free_port()
    (folder / "compose.yaml").write_text(
        STUDENT_COMPOSE.format(
            image=app_image,
            web_port=web_port,
            api_port=api_port,
            catalogue=FAKE_CATALOGUE,
            catalogue_port=FAKE_GUTENDEX_PORT,
            fake=HERE / "fake_gutendex.py",
        )
    )
    # What the engine does for a bind mount whose folder is missing: root's, drwxr-xr-x.
    for name in ("api-db", "crawler-db"):
        (folder / name).mkdir(mode=0o755)
        os.chown(folder / name, 0, 0)
    # The original crawler's files from an earlier run of the course: root's, rw-r--r--.
    for file, text in ORIGINAL_COUNT_FILES.items():
        (folder / "crawler-db" / file).write_text(text)
        (folder / "crawler-db" / file).chmod(0o644)
    project = f"{OWNER}student"
    compose = [tool("podman-compose"), "-p", project, "-f", str(folder / "compose.yaml")]
    try:
        run([*compose, "up", "-d"], env=podman_env, cwd=folder, timeout=300)
        yield {"folder": folder, "web_port": web_port, "api_port": api_port, "project": project}
    finally:
        print(run([*compose, "logs", "--tail", "40"], env=podman_env, cwd=folder, check=False).stdout)
        run([*compose, "down", "-v", "-t", "2"], env=podman_env, cwd=folder, check=False, timeout=120)


async def test_a_students_compose_file_with_root_owned_bind_mounts(
    student_compose: dict[str, object], podman_env: dict[str, str], app_image: str
) -> None:
    folder = student_compose["folder"]
    assert isinstance(folder, Path)
    api = f"http://127.0.0.1:{student_compose['api_port']}"
    page = f"http://127.0.0.1:{student_compose['web_port']}/"
    wait_ready(f"{api}/readyz", timeout=90, crawler=True)
    wait_ready(f"{page}readyz")

    async with aiohttp.ClientSession() as session:
        await chat_end_to_end(ChatBrowser(session), page, expected_api=f"{api}/")

    # Started as root (no user: in the file), each role now runs as the image's user,
    # with no way back (saved and filesystem uids too).
    helper = Podman(podman_env, app_image)
    for service in ("synchat-web", "synchat-api", "synchat-crawler"):
        container = f"{student_compose['project']}_{service}_1"
        assert uids_of_pid_1(helper, container) == [str(APP_UID)] * 4, service
    # The root-owned folders became the user's (the owner only; the group stays root's).
    assert owner_and_mode(folder / "api-db")[:2] == (APP_UID, 0)
    assert owner_and_mode(folder / "crawler-db")[:2] == (APP_UID, 0)
    assert (folder / "api-db" / "db.json").stat().st_uid == APP_UID
    assert (folder / "crawler-db" / "crawler.sqlite3").stat().st_uid == APP_UID
    # The original crawler's files did not stop ours, and are left exactly as they were.
    for file, text in ORIGINAL_COUNT_FILES.items():
        assert (folder / "crawler-db" / file).read_text() == text
        assert owner_and_mode(folder / "crawler-db" / file) == (0, 0, "-rw-r--r--")
    crawler = f"{student_compose['project']}_synchat-crawler_1"
    crawler_logs = helper("logs", crawler)
    assert "holds 2 count files of the original crawler" in crawler_logs.stdout + crawler_logs.stderr


# ---- the course's Kubernetes files, under podman kube play --------------------------

API_FILES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: synergychat-api-configmap
data:
  API_PORT: "8080"
  API_DB_FILEPATH: /persist/db.json
  CRAWLER_BASE_URL: http://crawler-service:8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: synergychat-api
spec:
  replicas: 1
  selector:
    matchLabels:
      app: synergychat-api
  template:
    metadata:
      labels:
        app: synergychat-api
    spec:
      containers:
        - name: synergychat-api
          image: {image}
          imagePullPolicy: Always
          env:
            - name: ROLE
              value: api
          envFrom:
            - configMapRef:
                name: synergychat-api-configmap
          ports:
            - containerPort: 8080
              hostIP: 127.0.0.1
              hostPort: {api_port}
          volumeMounts:
            - name: synergychat-api-volume
              mountPath: /persist
      volumes:
        - name: synergychat-api-volume
          persistentVolumeClaim:
            claimName: {claim}
"""

CLAIM_FILE = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {claim}
spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 1Gi
"""

CRAWLER_FILES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: synergychat-crawler-configmap
data:
  CRAWLER_KEYWORDS: love,hate,joy,sadness,anger,disgust,fear,surprise
  CRAWLER_DB_PATH: /cache
  CRAWLER_SOURCE_URL: {catalogue}
  CRAWLER_DELAY_SECONDS: "0"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: synergychat-crawler
spec:
  replicas: 1
  selector:
    matchLabels:
      app: synergychat-crawler
  template:
    metadata:
      labels:
        app: synergychat-crawler
    spec:
      containers:
        - name: synergychat-crawler-1
          image: {image}
          imagePullPolicy: Always
          env:
            - name: ROLE
              value: crawler
            - name: CRAWLER_PORT
              value: "8080"
          envFrom:
            - configMapRef:
                name: synergychat-crawler-configmap
          ports:
            - containerPort: 8080
              hostIP: 127.0.0.1
              hostPort: {crawler_port_1}
          volumeMounts:
            - name: {cache_volume}
              mountPath: /cache
        - name: synergychat-crawler-2
          image: {image}
          imagePullPolicy: Always
          env:
            - name: ROLE
              value: crawler
            - name: CRAWLER_PORT
              value: "8081"
          envFrom:
            - configMapRef:
                name: synergychat-crawler-configmap
          ports:
            - containerPort: 8081
              hostIP: 127.0.0.1
              hostPort: {crawler_port_2}
          volumeMounts:
            - name: {cache_volume}
              mountPath: /cache
      volumes:
        - name: {cache_volume}
          emptyDir: {{}}
"""

WEB_FILES = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: synergychat-web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: synergychat-web
  template:
    metadata:
      labels:
        app: synergychat-web
    spec:
      containers:
        - name: synergychat-web
          image: {image}
          imagePullPolicy: Always
          env:
            - name: ROLE
              value: web
            - name: WEB_PORT
              value: "8080"
            - name: API_URL
              value: http://127.0.0.1:{api_port}
          ports:
            - containerPort: 8080
              hostIP: 127.0.0.1
              hostPort: {web_port}
"""


def as_the_docs_say(manifest: str) -> str:
    """docs/DEPLOY.md, "Switching from the original images": a locally built image is never pulled."""
    return manifest.replace("imagePullPolicy: Always", "imagePullPolicy: IfNotPresent")


def volume_folder(podman: Podman, volume: str) -> Path:
    return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())


async def test_the_courses_kubernetes_files_with_an_original_database_and_two_crawlers(
    podman: Podman, tmp_path: Path
) -> None:
    network = podman.network("course-net")
    podman.fake_gutendex(network)
    ports = {name: free_port() for name in ("api_port", "web_port", "crawler_port_1", "crawler_port_2")}
    names = {
        "api": podman.name("synergychat-api"),
        "crawler": podman.name("synergychat-crawler"),
        "web": podman.name("synergychat-web"),
    }
    # Podman names a pod's volumes after it: this run's names, removed after it.
    claim, cache_volume = podman.name("synergychat-api-pvc"), podman.name("cache-volume")
    texts = {
        "claims": CLAIM_FILE.format(claim=claim),
        "crawler": CRAWLER_FILES.format(
            name=names["crawler"],
            image=podman.image,
            catalogue=FAKE_CATALOGUE,
            cache_volume=cache_volume,
            **ports,
        ),
        "api": API_FILES.format(name=names["api"], image=podman.image, claim=claim, **ports),
        "web": WEB_FILES.format(name=names["web"], image=podman.image, **ports),
    }
    files = {}
    for what, text in texts.items():
        files[what] = tmp_path / f"{what}.yaml"
        files[what].write_text(text)
    podman.on_cleanup("volume", "rm", "-f", claim, cache_volume)

    # Their claims exist from the original's days; the original api wrote db.json there.
    podman("kube", "play", str(files["claims"]))
    persist = volume_folder(podman, claim)
    (persist / "db.json").write_text(json.dumps(ORIGINAL_MESSAGES, indent=2))
    assert owner_and_mode(persist) == (0, 0, "drwxr-xr-x")

    # As written, the pull policy fails for an image that exists only here.
    refused = podman("kube", "play", "--network", network, str(files["web"]), check=False)
    podman("kube", "down", str(files["web"]), check=False)
    assert refused.returncode != 0 and "initializing source docker://" in refused.stderr, refused.stderr
    aliases = {"crawler": "crawler-service", "api": "api-service", "web": "web-service"}
    for what in ("crawler", "api", "web"):
        files[what].write_text(as_the_docs_say(texts[what]))
        podman.on_cleanup("kube", "down", str(files[what]))
        podman("kube", "play", "--network", f"{network}:alias={aliases[what]}", str(files[what]))
        pod = f"{names[what]}-pod-0"
        containers = [f"synergychat-{what}"]
        if what == "crawler":
            containers = ["synergychat-crawler-1", "synergychat-crawler-2"]
        podman.containers.extend(f"{pod}-{container}" for container in containers)

    api = f"http://127.0.0.1:{ports['api_port']}"
    crawlers = [f"http://127.0.0.1:{ports['crawler_port_1']}", f"http://127.0.0.1:{ports['crawler_port_2']}"]
    wait_ready(f"{api}/readyz", timeout=90, describe=podman.logs, crawler=True)
    for crawler in crawlers:
        wait_ready(f"{crawler}/readyz", describe=podman.logs)
    wait_ready(f"http://127.0.0.1:{ports['web_port']}/readyz", describe=podman.logs)

    # The original's messages come first, in order; the file is kept under the name the log gives.
    status, history = get_json(f"{api}/messages?limit=1000")
    assert status == 200
    assert [(m["AuthorUsername"], m["Text"]) for m in history] == [
        (m["AuthorUsername"], m["Text"]) for m in ORIGINAL_MESSAGES
    ]
    backup = persist / "db.json.original.json"
    assert json.loads(backup.read_text()) == ORIGINAL_MESSAGES
    api_logs = podman("logs", f"{names['api']}-pod-0-synergychat-api")
    api_log = api_logs.stdout + api_logs.stderr
    assert "the original file is kept as /persist/db.json.original.json" in api_log
    assert owner_and_mode(persist)[0] == APP_UID

    async with aiohttp.ClientSession() as session:
        await chat_end_to_end(ChatBrowser(session), f"http://127.0.0.1:{ports['web_port']}/")
    # Two crawlers on one volume: both up, and no count doubled between them.
    for crawler in crawlers:
        status, counts = get_json(f"{crawler}/stats?keywords=love")
        assert status == 200 and sum(row["Count"] for row in counts) == LOVE_MATCHES, counts
    for container in podman.containers:
        if container.startswith(OWNER + "synergychat"):
            assert uids_of_pid_1(podman, container) == [str(APP_UID)] * 4, container


# ---- started as another user, or without the means to switch --------------------------


def the_one_line(result_stderr: str) -> str:
    assert "Traceback" not in result_stderr, result_stderr
    (line,) = [line for line in result_stderr.splitlines() if line.startswith("synergychat:")]
    return line


def test_non_root_on_a_root_owned_folder_changes_nothing_and_says_how_to_fix_it(
    podman: Podman, tmp_path: Path
) -> None:
    folder = tmp_path / "crawler-db"
    folder.mkdir(mode=0o755)
    args = ["--rm", "--read-only", "--user", f"{APP_UID}:{APP_UID}", "-e", "ROLE=crawler"]
    args += ["-e", "CRAWLER_DB_PATH=/var/lib/crawler", "-v", f"{folder}:/var/lib/crawler"]
    result = podman("run", *args, podman.image, check=False, timeout=60)
    assert result.returncode == 1, result.stderr
    line = the_one_line(result.stderr)
    for part in (
        "CRAWLER_DB_PATH=/var/lib/crawler",
        "root:root (uid 0, gid 0), mode drwxr-xr-x",
        f"chown {APP_UID} /var/lib/crawler",
        f"securityContext.fsGroup: {APP_UID}",
    ):
        assert part in line, line
    assert owner_and_mode(folder) == (0, 0, "drwxr-xr-x")


def test_root_without_the_capabilities_to_switch_users_says_so(podman: Podman) -> None:
    args = ["--rm", "--cap-drop", "ALL", "-e", "ROLE=web"]
    result = podman("run", *args, podman.image, check=False, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"--user {APP_UID}:{APP_UID}" in the_one_line(result.stderr)
