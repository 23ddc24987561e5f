"""The stack's children: how each is started and how we know it is ready.

Components, in start order: redis (only when private), web (daphne), worker
(the app-server owner) and celery (worker with embedded beat). With
`up --no-embedded` only the components asked for run, against an external
database and Redis, and beat is its own process so exactly one machine runs
it. The supervisor (supervisor.py) runs these specs; nothing here starts a
process.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.runtime import home
from dispatchsite.runtime.redis import (
    find_redis_server,
    ping_socket,
    private_redis_argv,
)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
# A child that stayed up this long crashed for a new reason: restart it fast.
BACKOFF_RESET_AFTER_S = 30.0
STARTUP_TIMEOUT_S = 30.0
TAIL_LINES = 20

STATUS_STARTING = "starting"
STATUS_UP = "up"
STATUS_DOWN = "down"

# What `up --no-embedded` may run; the embedded stack runs all of them, with
# beat inside the celery worker.
COMPONENTS = ("web", "worker", "celery", "beat")


def dispatch_argv(*words: str) -> list[str]:
    """How children and the detached supervisor run the dispatch CLI."""
    return [sys.executable, "-m", "dispatchsite.cli", *words]


def supervise_argv(
    *,
    port: int,
    startup_timeout: float = STARTUP_TIMEOUT_S,
    foreground: bool = False,
    components: tuple[str, ...] | None = None,
) -> list[str]:
    # --home is how `down` tells our supervisor from any other process that
    # happens to hold the pid in the pidfile. supervisor.py's own entry point
    # is `dispatch supervise` minus the full CLI (op registry, every app's
    # imports), which costs seconds on a busy machine and is not needed here.
    argv = [
        sys.executable,
        "-m",
        "dispatchsite.runtime.supervisor",
        "supervise",
        "--home",
        str(home.home_dir()),
        "--port",
        str(port),
        "--startup-timeout",
        f"{startup_timeout:g}",
    ]
    if foreground:
        argv.append("--foreground")
    if components is not None:
        argv += ["--components", ",".join(components)]
    return argv


def log_tail(path: Path, *, offset: int = 0, lines: int = TAIL_LINES) -> list[str]:
    """The last lines written to `path` since `offset`."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return []
    text = data[-64 * 1024 :].decode(errors="replace")
    return [line for line in text.splitlines() if line.strip()][-lines:]


# -- components ---------------------------------------------------------------


@dataclass(eq=False)
class Child:
    name: str
    argv: list[str]
    probe: Callable[[Child], bool]
    after: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    pid_token: str | None = None
    status: str = STATUS_DOWN
    spawns: int = 0
    last_exit: int | None = None
    started_at: str | None = None
    ready_at: str | None = None
    started_mono: float = 0.0
    backoff: float = BACKOFF_MIN_S
    next_start: float = 0.0
    log_offset: int = 0
    log: Path = field(default_factory=Path)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def restarts(self) -> int:
        return max(self.spawns - 1, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pid_start": self.pid_token,
            "status": self.status,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "started_at": self.started_at,
            "ready_at": self.ready_at,
            "log": str(self.log),
            "log_offset": self.log_offset,
        }


def _probe_redis(child: Child) -> bool:
    return ping_socket(home.redis_socket_path(), timeout=0.3)


def _web_probe(port: int, *, ready_file: Path | None) -> Callable[[Child], bool]:
    url = f"http://127.0.0.1:{port}/healthz"

    def probe(child: Child) -> bool:
        # On a shared port any sibling may answer: this process says so itself.
        if ready_file is not None:
            written = home.read_json(ready_file) or {}
            if written.get("pid") != child.pid:
                return False
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return probe


def _worker_probe(host: str) -> Callable[[Child], bool]:
    path = home.worker_state_file(host)

    def probe(child: Child) -> bool:
        # The worker writes this once its app-server answered `initialize`;
        # the pid check ignores a file left by a previous (killed) worker.
        data = home.read_json(path)
        return bool(data and data.get("pid") == child.pid and data.get("ready_at"))

    return probe


def _celery_probe(host: str) -> Callable[[Child], bool]:
    path = home.celery_state_file(host)

    def probe(child: Child) -> bool:
        # Written from celery's worker_ready hook (celery_ready.py), which fires
        # only once the broker connection is up; merely being alive is not
        # enough because a bad broker URL fails a few seconds into startup.
        data = home.read_json(path)
        return bool(data and data.get("pid") == child.pid and data.get("ready_at"))

    return probe


def _beat_probe(host: str) -> Callable[[Child], bool]:
    path = home.beat_state_file(host)

    def probe(child: Child) -> bool:
        # Written from celery's beat_init hook (beat_process.py).
        data = home.read_json(path)
        return bool(data and data.get("pid") == child.pid and data.get("ready_at"))

    return probe


def celery_argv(*, host: str, embedded_beat: bool) -> list[str]:
    """A celery worker; with `embedded_beat` it also schedules (-B)."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        # Broker and result backend come from settings (CELERY_*).
        "-A",
        "dispatchsite.celery",
        "worker",
    ]
    if embedded_beat:
        argv += [
            "-B",
            # Settings name it too; explicit here so a stale env can't swap
            # in the file-based scheduler and fork the trigger schedule.
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "-s",
            str(home.celerybeat_schedule_file()),
        ]
    return [
        *argv,
        "--pool=solo",
        "--concurrency=1",
        "--loglevel=WARNING",
        "--hostname",
        f"dispatch@{host}",
        "--without-mingle",
        "--without-gossip",
        # Connects the worker_ready hook that the probe waits for.
        "--include",
        "dispatchsite.runtime.celery_ready",
    ]


def beat_argv() -> list[str]:
    """celery beat on its own (`up --no-embedded --beat`)."""
    return [
        sys.executable,
        "-m",
        "dispatchsite.runtime.beat_process",
        "-A",
        "dispatchsite.celery",
        "beat",
        "--loglevel=WARNING",
        "--scheduler",
        "django_celery_beat.schedulers:DatabaseScheduler",
        "-s",
        str(home.celerybeat_schedule_file()),
    ]


def web_argv(
    *,
    port: int,
    ping_interval: int | None = None,
    ping_timeout: int | None = None,
    shared: bool = False,
    ready_file: Path | None = None,
) -> list[str]:
    """daphne serving dispatch; pings as daphne's defaults unless given.

    `shared`: one of several web processes on `port` (dispatchsite.runtime.web).
    """
    argv = [sys.executable, "-m", "dispatchsite.runtime.web"]
    if shared:
        argv += ["--shared-port", f"127.0.0.1:{port}"]
    else:
        argv += ["-b", "127.0.0.1", "-p", str(port)]
    if ready_file is not None:
        argv += ["--ready-file", str(ready_file)]
    if ping_interval is not None:
        argv += ["--ping-interval", str(ping_interval)]
    if ping_timeout is not None:
        argv += ["--ping-timeout", str(ping_timeout)]
    return [*argv, "dispatchsite.asgi:application"]


def web_names(processes: int) -> list[str]:
    """The web children: `web`, then `web-2` ... when several share the port."""
    return ["web"] + [f"web-{n}" for n in range(2, processes + 1)]


def web_children(*, port: int, after: tuple[str, ...]) -> list[Child]:
    processes = settings.DISPATCH_WEB_PROCESSES
    children = []
    for name in web_names(processes):
        ready = home.web_state_file(name) if processes > 1 else None
        argv = web_argv(
            port=port,
            ping_interval=settings.DISPATCH_WS_PING_INTERVAL,
            ping_timeout=settings.DISPATCH_WS_PING_TIMEOUT,
            shared=processes > 1,
            ready_file=ready,
        )
        probe = _web_probe(port, ready_file=ready)
        children.append(Child(name=name, argv=argv, probe=probe, after=after))
    return children


def build_children(
    *,
    port: int,
    host: str,
    private_redis: bool,
    components: tuple[str, ...] | None = None,
) -> list[Child]:
    """The children to run; `components` None is the embedded stack."""
    wanted = COMPONENTS if components is None else components
    children = []
    after: tuple[str, ...] = ()
    if private_redis:
        argv = private_redis_argv(
            binary=find_redis_server(), socket_path=home.redis_socket_path()
        )
        children.append(Child(name="redis", argv=argv, probe=_probe_redis))
        after = ("redis",)
    if "web" in wanted:
        children += web_children(port=port, after=after)
    if "worker" in wanted:
        children.append(
            Child(
                name="worker",
                argv=dispatch_argv("worker", "--host", host),
                probe=_worker_probe(host),
                after=after,
            )
        )
    if "celery" in wanted:
        celery = celery_argv(host=host, embedded_beat=components is None)
        children.append(
            Child(name="celery", argv=celery, probe=_celery_probe(host), after=after)
        )
    if "beat" in wanted and components is not None:
        children.append(
            Child(name="beat", argv=beat_argv(), probe=_beat_probe(host), after=after)
        )
    for child in children:
        child.log = home.log_file(child.name)
    return children
