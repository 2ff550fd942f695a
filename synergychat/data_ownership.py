"""Making the data folders ours, then dropping root: how official database images start.

The original images run as root, so the volumes their users already have are
root's: a folder the container engine created for a compose bind mount, a fresh
cloud disk mounted at ``/persist`` (root:root, drwxr-xr-x). Started as root (the
image's default, as the original's files run it), we take ownership of the
configured data paths (the folder of ``API_DB_FILEPATH`` and the files of our
database in it, ``CRAWLER_DB_PATH`` and our file in it) and switch to the
image's unprivileged user before serving anything.

Started as any other user (our own manifests' ``runAsUser: 10001``, OpenShift's
random uid) nothing is changed: a data folder that user can't write stops the
process with one line naming the variable, the path, its owner and mode, and
the two fixes. Run from a checkout as root, where the image's user does not
exist, nothing changes either.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .settings import CRAWLER_DB_FILENAME, ApiSettings, CrawlerSettings, StartupError

log = logging.getLogger(__name__)

# The Dockerfile creates this user (uid and gid 10001); a checkout has none.
SERVICE_USER = "synergychat"


@dataclass(frozen=True)
class DataPath:
    """A folder the process must write, and the name prefix of the files of ours inside it."""

    variable: str
    value: str
    folder: Path
    # Our files in the folder start with this (the database, its -wal and -shm, the
    # import's temporary file and backup); nothing else in the folder is touched.
    file_prefix: str


def data_paths(api: ApiSettings | None, crawler: CrawlerSettings | None) -> list[DataPath]:
    """The data paths a role's settings name (none when it keeps its data in memory)."""
    paths = []
    if api is not None and api.api_db_filepath:
        file = Path(api.api_db_filepath)
        paths.append(DataPath("API_DB_FILEPATH", api.api_db_filepath, file.parent, file.name))
    if crawler is not None and crawler.crawler_db_path:
        folder = Path(crawler.crawler_db_path)
        paths.append(DataPath("CRAWLER_DB_PATH", crawler.crawler_db_path, folder, CRAWLER_DB_FILENAME))
    return paths


def prepare_data_paths(paths: Sequence[DataPath]) -> None:
    """Own the data paths and drop root if started as root in the image; then check they are writable.

    Raises StartupError with one line to show the user.
    """
    account = _service_account()
    if os.geteuid() == 0 and account is not None:
        for path in paths:
            _take_ownership(path, account.pw_uid, account.pw_gid)
        _drop_root(account)
    # Kubernetes adds fsGroup to every container's groups: the image's group works for any uid.
    fs_group = account.pw_gid if account is not None else os.getegid()
    for path in paths:
        _check_writable(path, fs_group)


def _service_account() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None


def _take_ownership(path: DataPath, uid: int, gid: int) -> None:
    """Create the folder (as the original did) and make it and our files in it the user's.

    Only the folder itself and our own files: the folder of API_DB_FILEPATH may
    hold other things, which stay as they are. Symbolic links are never followed.
    """
    folder = path.folder.absolute()
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    try:
        for created in reversed(missing):
            created.mkdir()
            os.chown(created, uid, gid, follow_symlinks=False)
        if not folder.is_dir() or folder == Path(folder.anchor):
            return  # _check_writable names the problem; never chown a filesystem root
        changed = _chown_if_needed(folder, uid, gid)
        for entry in os.scandir(folder):
            if entry.name.startswith(path.file_prefix) and entry.is_file(follow_symlinks=False):
                changed |= _chown_if_needed(Path(entry.path), uid, gid)
    except OSError as exc:
        # A read-only or root-squashed volume: the writability check says what to do.
        log.warning("%s: could not take ownership of %s: %s", path.variable, folder, exc.strerror or exc)
        return
    if changed or missing:
        log.info("%s: %s now belongs to uid %d (created, or another user's)", path.variable, folder, uid)


def _chown_if_needed(target: Path, uid: int, gid: int) -> bool:
    if target.lstat().st_uid == uid:
        return False
    # The group stays: only the owner changes, as `chown 10001 DIR` would.
    os.chown(target, uid, -1, follow_symlinks=False)
    return True


def _drop_root(account: pwd.struct_passwd) -> None:
    try:
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    except PermissionError:
        raise StartupError(
            f"started as root without the capabilities to switch to user {SERVICE_USER} "
            f"(uid {account.pw_uid}): run as that user (--user {account.pw_uid}:{account.pw_gid}, "
            f"or securityContext.runAsUser: {account.pw_uid}), or keep CAP_SETUID and CAP_SETGID"
        ) from None
    os.environ["HOME"] = account.pw_dir
    log.info("running as user %s (uid %d, gid %d)", SERVICE_USER, account.pw_uid, account.pw_gid)


def _check_writable(path: DataPath, fs_group: int) -> None:
    """Raise StartupError unless this process can create and write its files in the folder."""
    folder = path.folder.absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path(folder.anchor))
    prefix = f"{path.variable}={path.value}"
    if existing == folder and not folder.is_dir():
        raise StartupError(f"{prefix}: {folder} is not a folder")
    if existing != folder and not existing.is_dir():
        raise StartupError(f"{prefix}: {existing} is not a folder, so {folder} cannot be created")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise StartupError(f"{prefix}: {existing} is on a read-only filesystem: mount a writable volume")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = f"{folder} cannot be created: " if existing != folder else ""
        raise StartupError(f"{prefix}: {where}{_cannot_write('folder', existing, fs_group)}")
    if existing == folder:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            entries = []  # writable but not listable: SQLite will say if our file is not usable
        # The database and SQLite's files beside it must be writable (a backup need not be).
        database_files = {path.file_prefix + suffix for suffix in ("", "-wal", "-shm", "-journal")}
        for entry in entries:
            if entry.name in database_files and not os.access(entry.path, os.W_OK):
                try:
                    problem = _cannot_write("file", Path(entry.path), fs_group)
                except FileNotFoundError:
                    continue  # another process's journal, gone again (crawlers sharing the folder)
                raise StartupError(f"{prefix}: {problem}")


def _cannot_write(what: str, target: Path, fs_group: int) -> str:
    info = target.stat()
    uid, gid = os.geteuid(), os.getegid()
    return (
        f"the {what} {target} belongs to {_owner(info)}, mode {stat.filemode(info.st_mode)}, "
        f"and uid {uid} (gid {gid}) cannot write it. Fix: chown {uid} {target} (on the host or volume), "
        f"or on Kubernetes set securityContext.fsGroup: {fs_group}"
    )


def _owner(info: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"{user}:{group} (uid {info.st_uid}, gid {info.st_gid})"
