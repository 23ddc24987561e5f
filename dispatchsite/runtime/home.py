"""DISPATCH_HOME layout: where the daemon keeps its pidfile, state and logs.

DISPATCH_HOME/
  dispatch.sqlite3     the registry (SQLite default)
  config.toml          local policy
  run/  (0700)         supervisor.pid, supervisor.json, redis.sock,
                       worker-<host>.json, locks
  logs/                <component>.log
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import ValidationError

WRITABLE_FIX = "set DISPATCH_HOME to a writable directory"


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


def celerybeat_schedule_file() -> Path:
    return run_dir() / "celerybeat-schedule"


def log_file(component: str) -> Path:
    return log_dir() / f"{component}.log"


def ensure_home() -> None:
    """Create DISPATCH_HOME, run/ (0700) and logs/, and prove they are writable.

    Permission bits do not stop root, so writability is checked by creating a
    file rather than with os.access().
    """
    home = home_dir()
    try:
        home.mkdir(parents=True, exist_ok=True)
        run = run_dir()
        run.mkdir(mode=0o700, exist_ok=True)
        # mkdir's mode is filtered by the umask and ignored for an existing
        # directory; the socket and pidfiles are only private with 0700.
        run.chmod(0o700)
        log_dir().mkdir(exist_ok=True)
        for directory in (home, run, log_dir()):
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
