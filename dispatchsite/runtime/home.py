"""DISPATCH_HOME layout: where the daemon keeps its pidfile, state and logs.

DISPATCH_HOME/        (everything owner-only: 0700 folders, 0600 files)
  dispatch.sqlite3     the registry (SQLite default)
  config.toml          local policy
  secret_key           Django's SECRET_KEY for this home (settings.py reads it)
  run/                 supervisor.pid, supervisor.json, redis.sock,
                       worker-<host>.json, celery-<host>.json,
                       beat-<host>.json, locks

One home runs one supervisor (`up`). Two `up --no-embedded` on one machine
(say web+celery+beat and a second worker) each get their own DISPATCH_HOME
and share the database through DATABASE_URL; the run/ files of a home are
only ever its own supervisor's.
  logs/                <component>.log

The database holds session keys, token hashes and transcripts, so no other
local user may read anything here: `up` sets OWNER_UMASK for itself and every
process it starts, and tightens an existing home (home_secure).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import ValidationError

WRITABLE_FIX = "set DISPATCH_HOME to a writable directory"
OWNER_UMASK = 0o077
# Group and other permission bits: none may be set on anything in the home.
LOOSE_BITS = 0o077
SECRET_KEY_FILENAME = "secret_key"  # settings.py reads DISPATCH_HOME/secret_key


def home_dir() -> Path:
    return Path(settings.DISPATCH_HOME)


def run_dir() -> Path:
    return Path(settings.DISPATCH_RUN_DIR)


def log_dir() -> Path:
    return Path(settings.DISPATCH_LOG_DIR)


def supervisor_pidfile() -> Path:
    return run_dir() / "supervisor.pid"


def supervisor_lockfile() -> Path:
    return run_dir() / "supervisor.lock"


def up_lockfile() -> Path:
    return run_dir() / "up.lock"


def state_file() -> Path:
    return run_dir() / "supervisor.json"


def redis_socket_path() -> Path:
    # Must match the unix:// REDIS_URL that settings derive for the private
    # instance, or the children would look for Redis somewhere else.
    return run_dir() / "redis.sock"


def worker_state_file(host: str) -> Path:
    return run_dir() / f"worker-{host}.json"


def celery_state_file(host: str) -> Path:
    return run_dir() / f"celery-{host}.json"


def beat_state_file(host: str) -> Path:
    return run_dir() / f"beat-{host}.json"


def web_state_file(name: str) -> Path:
    """Written by a web process sharing the port once it listens (`web-2`...)."""
    return run_dir() / f"{name}.json"


def celerybeat_schedule_file() -> Path:
    return run_dir() / "celerybeat-schedule"


def log_file(component: str) -> Path:
    return log_dir() / f"{component}.log"


def secret_key_file() -> Path:
    return home_dir() / SECRET_KEY_FILENAME


def ensure_home() -> None:
    """Create DISPATCH_HOME, run/ and logs/ (0700), and prove they are writable.

    Permission bits do not stop root, so writability is checked by creating a
    file rather than with os.access().
    """
    home = home_dir()
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in (run_dir(), log_dir()):
            # mkdir's mode only applies to a new directory (and the umask can
            # only narrow it); `up` tightens the rest of an existing home.
            directory.mkdir(mode=0o700, exist_ok=True)
        # The socket and pidfiles are only private with 0700, whoever runs.
        run_dir().chmod(0o700)
        for directory in (home, run_dir(), log_dir()):
            fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=directory)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        where = exc.filename or home
        raise ValidationError(
            f"DISPATCH_HOME {home} is not writable ({where}: "
            f"{exc.strerror or exc}); {WRITABLE_FIX}",
            hint=WRITABLE_FIX,
            data={"dispatch_home": str(home)},
        ) from None


def owner_only_umask() -> None:
    """Make every file this process (and its children) creates owner-only."""
    os.umask(OWNER_UMASK)


def _children(directory: Path) -> list[tuple[Path, os.stat_result]]:
    """The entries of `directory` except symlinks, which are never followed."""
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return []
    children = []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished while listing
        if not stat.S_ISLNK(info.st_mode):
            children.append((Path(entry.path), info))
    return children


def _home_entries(
    visit: Callable[[Path, os.stat_result], None] | None = None,
) -> list[tuple[Path, os.stat_result]]:
    """Every folder and file in the home, each visited before its contents.

    Nothing outside the home is reached: the home itself may be a symlink (the
    user chose it), but no symlink inside it is listed or followed.
    """
    root = home_dir()
    try:
        todo = [(root, root.stat())]
    except OSError:
        return []
    found = []
    while todo:
        directory, info = todo.pop()
        found.append((directory, info))
        if visit is not None:
            visit(directory, info)
        for path, child in _children(directory):
            if stat.S_ISDIR(child.st_mode):
                todo.append((path, child))
            else:
                found.append((path, child))
                if visit is not None:
                    visit(path, child)
    return found


def home_loose_paths() -> list[Path]:
    """What in the home group or other users may access (for `doctor`)."""
    return [path for path, info in _home_entries() if info.st_mode & LOOSE_BITS]


def home_secure() -> list[Path]:
    """Remove group/other bits from the home and everything in it.

    A folder is tightened before it is listed, so once the home is 0700 no
    other user can swap an entry for a symlink between the lstat and the
    chmod. Entries of another owner are left alone (`doctor` reports them).
    Returns what was changed.
    """
    fixed: list[Path] = []
    uid = os.getuid()

    def tighten(path: Path, info: os.stat_result) -> None:
        if info.st_uid != uid or not info.st_mode & LOOSE_BITS:
            return
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~LOOSE_BITS)
        except OSError:
            return
        fixed.append(path)

    _home_entries(tighten)
    return fixed


def secret_key_ensure() -> None:
    """Give this home its own SECRET_KEY, once; an existing key is kept.

    Written to a private temp file and hard-linked into place, so a reader
    never sees a partial key and two concurrent `up`s keep the same one.
    """
    path = secret_key_file()
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        unlink_quietly(Path(tmp))


def now_iso() -> str:
    """The timestamp format of the run/ state files."""
    return datetime.now(UTC).isoformat()


def write_json_atomic(path: Path, data: dict[str, Any], *, mode: int = 0o600) -> None:
    """Replace `path` in one rename so readers never see half a document."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
