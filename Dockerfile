# syntax=docker/dockerfile:1
# One image for every role; ROLE picks it (web, api, crawler or all).
# The base is a build arg so machines that can't pull build on a local Python
# base (see scripts/build-base-image.sh); both stages must use the same base,
# since the venv links to its python3.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Exactly the pinned runtime dependencies, nothing from the dev requirements.
RUN /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt
COPY synergychat /app/synergychat
# The version's one source, beside the package: `--version` and the crawler's
# User-Agent read it there (synergychat/version.py).
COPY pyproject.toml /app/pyproject.toml
# Compile once here: the root filesystem is read-only at run time.
RUN /opt/venv/bin/python -m compileall -q /opt/venv /app/synergychat

FROM ${PYTHON_IMAGE}
# pyproject.toml's version; tests/deploy fails the build's image when they differ.
LABEL org.opencontainers.image.title="synergychat" \
      org.opencontainers.image.description="A group chat with a data-insights bot: web, api and crawler roles of one image" \
      org.opencontainers.image.version="0.1.0"
ARG UID=10001
ARG GID=10001
# PYTHONMALLOC and GLIBC_TUNABLES: Python's objects come from glibc's malloc, not
# Python's own allocator, so that the memory of a peak (thousands of streams, then
# closed) goes back to the system; with glibc's per-thread cache at 64 chunks of a
# size rather than 7 that costs no measurable CPU (docs/OPERATIONS.md, "CPU and
# memory"; scripts/run.sh sets the same).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONMALLOC=malloc \
    GLIBC_TUNABLES=glibc.malloc.tcache_count=64 \
    ROLE=all
RUN groupadd --gid "${GID}" synergychat \
    && useradd --uid "${UID}" --gid "${GID}" --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin synergychat \
    && mkdir /data \
    && chown "${UID}:0" /data \
    && chmod g=u /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# The databases go under /data (API_DB_FILEPATH=/data/api/messages.db,
# CRAWLER_DB_PATH=/data/crawler). /data belongs to our user and to group 0 with
# the owner's rights (OpenShift's convention, drwxrwxr-x): the image's user
# writes it, and so does an arbitrary uid run in group 0 (OpenShift, or
# --user 12345:0). A fresh named volume there inherits owner, group and mode.
#
# No USER: the process starts as root and, before serving, takes ownership of
# its data folders (API_DB_FILEPATH's folder, CRAWLER_DB_PATH) and switches to
# uid/gid 10001 for good (synergychat/data_ownership.py), as the official
# database images do. That is what lets the original's files work unchanged:
# the original ran as root, so their bind mounts and disks are root's. Started
# as non-root (our compose file and manifests set 10001; OpenShift's random uid)
# nothing is changed. checkov's CKV_DOCKER_3 looks only for a USER instruction.
# checkov:skip=CKV_DOCKER_3:starts as root to take ownership of root-owned data volumes, then drops to uid 10001 before serving
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "synergychat"]
