"""The supervisor behind `dispatch up`: runs and restarts the stack's processes.

It runs the children that stack.py specifies. Each child runs in its own
session, so its process group id is its pid and one killpg() reaches its
grandchildren too (celery's beat process, the worker's codex app-server).
State goes to run/supervisor.json, rewritten atomically, for `up`, `down` and
`daemon status` to read (status.py).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.runtime import home
from dispatchsite.runtime.home import now_iso
from dispatchsite.runtime.processes import (
    STOP_GRACE_S,
    group_alive,
    pid_alive,
    proc_start_token,
    stop_verified,
)
from dispatchsite.runtime.stack import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    BACKOFF_RESET_AFTER_S,
    STARTUP_TIMEOUT_S,
    STATUS_DOWN,
    STATUS_STARTING,
    STATUS_UP,
    Child,
    build_children,
    log_tail,
)
from dispatchsite.runtime.status import (
    read_supervisor_pid,
    startup_failure_error,
    up_result,
)

logger = logging.getLogger(__name__)

TICK_S = 0.1
STATE_REFRESH_S = 2.0


# -- the supervisor -----------------------------------------------------------


class AlreadyRunningError(DispatchError):
    code = "already_running"


class Supervisor:
    def __init__(
        self,
        *,
        port: int,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        on_ready: Callable[[dict[str, Any]], None] | None = None,
        out: TextIO | None = None,
        components: tuple[str, ...] | None = None,
    ) -> None:
        self.port = port
        # None: the embedded stack (everything, beat inside celery).
        self.components = components
        self.host: str = settings.DISPATCH_HOST
        self.private_redis: bool = settings.DISPATCH_REDIS_PRIVATE
        self.url = f"http://127.0.0.1:{port}"
        self.startup_timeout = startup_timeout
        self.on_ready = on_ready
        self.out = out or sys.stderr
        self.children = build_children(
            port=port,
            host=self.host,
            private_redis=self.private_redis,
            components=components,
        )
        self.phase = "starting"
        self.failure: dict[str, Any] | None = None
        self.app_server: dict[str, Any] | None = None
        self.started_at = now_iso()
        self._stop_signal: int | None = None
        self._lock_fd: int | None = None
        self._last_state_write = 0.0
        self._env = self._child_env()

    # Life cycle -----------------------------------------------------------

    def run(self) -> None:
        """Supervise until SIGTERM/SIGINT; raise if the stack failed to start."""
        self._acquire_lock()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._request_stop)
        if self.private_redis:
            # A socket file left by a killed Redis would fool the probe.
            home.unlink_quietly(home.redis_socket_path())
        home.supervisor_pidfile().write_text(f"{os.getpid()}\n")
        self._write_state()
        began = time.monotonic()
        try:
            while self._stop_signal is None and self.failure is None:
                self._tick()
                if self.phase == "starting":
                    self._check_startup(began)
                time.sleep(TICK_S)
        finally:
            self._shutdown()
        if self.failure is not None:
            raise startup_failure_error(self.failure)

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stop_signal = signum

    def _acquire_lock(self) -> None:
        fd = os.open(home.supervisor_lockfile(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunningError(
                f"another supervisor is running for {home.home_dir()}",
                hint="`dispatch down` stops it",
            ) from None
        self._lock_fd = fd

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Children recompute settings from the environment; pin the home so a
        # relative DISPATCH_HOME or a different cwd cannot split the stack.
        env["DISPATCH_HOME"] = str(home.home_dir())
        env["DISPATCH_HOST"] = self.host
        env.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # One pass of the loop ---------------------------------------------------

    def _tick(self) -> None:
        changed = False
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    if child.status == STATUS_STARTING and self._probe(child):
                        child.status = STATUS_UP
                        child.ready_at = now_iso()
                        changed = True
                    continue
                self._on_exit(child, code)
                changed = True
                if self.failure is not None:
                    return
            if now >= child.next_start and self._deps_up(child):
                self._spawn(child)
                changed = True
        if self.phase == "starting" and all(
            child.status == STATUS_UP for child in self.children
        ):
            self.phase = "running"
            changed = True
            self._refresh_app_server()
            self._write_state()
            if self.on_ready is not None:
                self.on_ready(self.snapshot())
        if changed or now - self._last_state_write >= STATE_REFRESH_S:
            self._refresh_app_server()
            self._write_state()

    def _probe(self, child: Child) -> bool:
        try:
            return child.probe(child)
        except Exception as exc:  # noqa: BLE001 - a probe must not kill us
            self._say(f"{child.name} readiness probe failed: {exc!r}")
            return False

    def _deps_up(self, child: Child) -> bool:
        by_name = {c.name: c for c in self.children}
        return all(by_name[name].status == STATUS_UP for name in child.after)

    def _spawn(self, child: Child) -> None:
        with child.log.open("ab") as log:
            header = f"--- {now_iso()} supervisor starting {child.name}\n"
            log.write(header.encode())
            log.flush()
            child.log_offset = log.tell()
            try:
                child.proc = subprocess.Popen(
                    child.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    cwd=home.home_dir(),
                    start_new_session=True,
                )
            except OSError as exc:
                self.failure = {
                    "component": child.name,
                    "message": f"cannot start {child.name}: {exc}",
                    "exit_code": None,
                    "log": str(child.log),
                    "stderr_tail": [],
                }
                return
        child.pid_token = proc_start_token(child.proc.pid)
        child.spawns += 1
        child.status = STATUS_STARTING
        child.started_at = now_iso()
        child.ready_at = None
        child.started_mono = time.monotonic()

    def _on_exit(self, child: Child, code: int) -> None:
        pid = child.pid
        uptime = time.monotonic() - child.started_mono
        child.last_exit = code
        child.status = STATUS_DOWN
        child.proc = None
        child.pid_token = None
        if pid is not None:
            # Whatever the child left in its group (a forked beat, an
            # app-server) dies with it; a restart must not double them.
            self._kill_group(pid, signal.SIGKILL)
        if child.name == "worker":
            self._reap_app_server(worker_pid=pid)
        self._forget_ready_file(child.name, pid)
        tail = log_tail(child.log, offset=child.log_offset)
        self._say(f"{child.name} (pid {pid}) exited with {code} after {uptime:.1f}s")
        if self.phase == "starting":
            last = tail[-1] if tail else "no output"
            self.failure = {
                "component": child.name,
                "message": f"{child.name} exited during startup (exit {code}): {last}",
                "exit_code": code,
                "log": str(child.log),
                "stderr_tail": tail,
            }
            return
        if uptime >= BACKOFF_RESET_AFTER_S:
            child.backoff = BACKOFF_MIN_S
        delay = child.backoff
        child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
        child.next_start = time.monotonic() + delay
        self._say(f"restarting {child.name} in {delay:.1f}s")

    def _check_startup(self, began: float) -> None:
        if time.monotonic() - began < self.startup_timeout:
            return
        waiting = [c for c in self.children if c.status != STATUS_UP]
        name = waiting[0].name if waiting else "stack"
        tail = log_tail(waiting[0].log, offset=waiting[0].log_offset) if waiting else []
        message = (
            f"{', '.join(c.name for c in waiting)} not ready after "
            f"{self.startup_timeout:g}s"
        )
        if tail:
            message += f"; {name} said: {tail[-1]}"
        self.failure = {
            "component": name,
            "message": message,
            "exit_code": None,
            "log": str(waiting[0].log) if waiting else None,
            "stderr_tail": tail,
        }

    # App-server bookkeeping ----------------------------------------------------

    def _refresh_app_server(self) -> None:
        worker = next((c for c in self.children if c.name == "worker"), None)
        if worker is None or worker.pid is None:
            return
        data = home.read_json(home.worker_state_file(self.host))
        if not data or data.get("pid") != worker.pid:
            return
        pid = data.get("app_server_pid")
        if not isinstance(pid, int):
            return
        if self.app_server and self.app_server.get("pid") == pid:
            self.app_server["version"] = data.get("app_server_version")
            return
        # Recorded while the worker that spawned it is alive, so the token
        # really is the app-server's; later checks compare against it.
        self.app_server = {
            "pid": pid,
            "pid_start": proc_start_token(pid),
            "version": data.get("app_server_version"),
            "worker_pid": worker.pid,
        }

    def _reap_app_server(self, *, worker_pid: int | None) -> None:
        record = self.app_server
        if record and record.get("worker_pid") == worker_pid:
            stop_verified(record["pid"], record.get("pid_start"), grace=STOP_GRACE_S)
            self.app_server = None

    # Shutdown -------------------------------------------------------------

    def _shutdown(self) -> None:
        self.phase = "failed" if self.failure else "stopping"
        self._write_state()
        # Dependents first and together (they may still talk to Redis while
        # they stop), then what they depend on.
        needed = {name for child in self.children for name in child.after}
        ordered = list(reversed(self.children))
        self._stop_children([c for c in ordered if c.name not in needed])
        self._stop_children([c for c in ordered if c.name in needed])
        if self.app_server:
            record = self.app_server
            stop_verified(record["pid"], record.get("pid_start"), grace=STOP_GRACE_S)
            self.app_server = None
        for child in self.children:
            self._forget_ready_file(child.name, None)
        if self.private_redis:
            home.unlink_quietly(home.redis_socket_path())
        if self.failure is not None:
            # Kept so the `up` that started us can report why.
            self._write_state()
        else:
            home.unlink_quietly(home.state_file())
        if read_supervisor_pid() == os.getpid():
            home.unlink_quietly(home.supervisor_pidfile())
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _stop_children(self, children: list[Child]) -> None:
        """SIGTERM each group (in the given order), wait, SIGKILL stragglers."""
        running = [(c, c.proc) for c in children if c.proc is not None]
        began = time.monotonic()
        for _, proc in running:
            self._kill_group(proc.pid, signal.SIGTERM)
        deadline = began + STOP_GRACE_S
        waiting = list(running)
        while waiting and time.monotonic() < deadline:
            waiting = [
                (c, p) for c, p in waiting if p.poll() is None or group_alive(p.pid)
            ]
            time.sleep(0.05)
        stubborn = {child.name for child, _ in waiting}
        for child, proc in running:
            if child.name in stubborn:
                self._say(f"{child.name} ignored SIGTERM for {STOP_GRACE_S:g}s")
            # Also clears grandchildren that outlived a clean leader exit.
            self._kill_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
            if child.name == "worker":
                self._reap_app_server(worker_pid=proc.pid)
            self._forget_ready_file(child.name, proc.pid)
            self._say(
                f"stopped {child.name} (pid {proc.pid}, exit {proc.returncode}) "
                f"in {time.monotonic() - began:.1f}s"
            )
            child.last_exit = proc.returncode
            child.status = STATUS_DOWN
            child.proc = None
            child.pid_token = None
        self._write_state()

    def _forget_ready_file(self, name: str, pid: int | None) -> None:
        """Drop a dead child's readiness file so status shows no stale pids."""
        path = {
            "worker": home.worker_state_file(self.host),
            "celery": home.celery_state_file(self.host),
            "beat": home.beat_state_file(self.host),
        }.get(name, home.web_state_file(name) if name.startswith("web") else None)
        data = home.read_json(path) if path else None
        if path and data and (data.get("pid") == pid or not pid_alive(data.get("pid"))):
            home.unlink_quietly(path)

    def _kill_group(self, pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # State ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "pid_start": proc_start_token(os.getpid()),
            "home": str(home.home_dir()),
            "host": self.host,
            "port": self.port,
            "url": self.url if any(c.name == "web" for c in self.children) else None,
            "embedded": self.components is None,
            "redis_url": settings.REDIS_URL,
            "redis_private": self.private_redis,
            "phase": self.phase,
            "started_at": self.started_at,
            "updated_at": now_iso(),
            "components": {child.name: child.as_dict() for child in self.children},
            "app_server": self.app_server,
            "failure": self.failure,
        }

    def _write_state(self) -> None:
        home.write_json_atomic(home.state_file(), self.snapshot())
        self._last_state_write = time.monotonic()

    def _say(self, message: str) -> None:
        print(f"{now_iso()} supervisor: {message}", file=self.out, flush=True)


# -- entry points ----------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", required=True, help="DISPATCH_HOME it serves")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--startup-timeout", type=float, default=STARTUP_TIMEOUT_S)
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="print the `up` result on stdout once every component is ready",
    )
    parser.add_argument(
        "--components",
        type=lambda raw: tuple(raw.split(",")),
        default=None,
        help="comma-separated components (`up --no-embedded`); default: all",
    )


def run_supervisor(args: argparse.Namespace) -> None:
    """Shared by `dispatch supervise` and `python -m` of this module."""
    if Path(args.home) != home.home_dir():
        raise ValidationError(
            f"--home {args.home} is not DISPATCH_HOME ({home.home_dir()})",
            hint="start the stack with `dispatch up`",
        )
    # `up` set it already; a supervisor started by hand must not loosen it.
    home.owner_only_umask()

    def announce(state: dict[str, Any]) -> None:
        result = up_result("started", pid=state["pid"], state=state)
        print(json.dumps(result, indent=2, default=str), flush=True)

    Supervisor(
        port=args.port,
        startup_timeout=args.startup_timeout,
        on_ready=announce if args.foreground else None,
        components=args.components,
    ).run()


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    parser = argparse.ArgumentParser(prog="dispatch-supervisor")
    parser.add_argument("command", choices=["supervise"])
    configure_parser(parser)
    args = parser.parse_args(argv)
    try:
        run_supervisor(args)
    except DispatchError as exc:
        print(json.dumps(exc.as_dict(), default=str), file=sys.stderr, flush=True)
        return exc.exit_status
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy, so there is one
    # set of classes.
    from dispatchsite.runtime import supervisor as _module

    sys.exit(_module.main(sys.argv[1:]))
