"""`dispatch up` and `down`; `daemon status` reads what they leave (status.py).

The supervisor is a detached `dispatch supervise --home H` process. It is
found through run/supervisor.pid, and a pid is only trusted (or signalled)
when /proc shows that it runs `supervise --home <this DISPATCH_HOME>`.
Recorded children are only signalled when their kernel start time still
matches the one the supervisor recorded.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.runtime import home
from dispatchsite.runtime.beat import beat_entries_ensure
from dispatchsite.runtime.processes import (
    STOP_GRACE_S,
    same_process,
    stop_verified,
    wait_dead,
)
from dispatchsite.runtime.redis import (
    check_socket_path,
    find_redis_server,
    redis_reachable,
)
from dispatchsite.runtime.stack import STARTUP_TIMEOUT_S, log_tail, supervise_argv
from dispatchsite.runtime.status import (
    read_state,
    running_supervisor_pid,
    startup_failure_error,
    supervisor_alive,
    up_result,
)

DEFAULT_PORT = 8321
UP_LOCK_TIMEOUT_S = 90.0
# Two tiers of stops (dependents, then Redis) plus the app-server, each with
# its own grace period, and slack for a slow machine.
DOWN_TIMEOUT_S = 4 * STOP_GRACE_S + 10.0
DEAD_WAIT_S = 3.0


# -- up -----------------------------------------------------------------------


def external_services_check() -> None:
    """`--no-embedded` runs against an external database and Redis only."""
    missing = [
        name
        for name, value in (
            ("DATABASE_URL", settings.DATABASE_URL),
            ("DISPATCH_REDIS_URL", settings.DISPATCH_REDIS_URL),
        )
        if not value
    ]
    if missing:
        fix = (
            f"export {' and '.join(missing)} (e.g. DATABASE_URL=postgres://... "
            "DISPATCH_REDIS_URL=redis://...), or drop --no-embedded for the "
            "one-machine stack"
        )
        raise ValidationError(
            f"--no-embedded needs an external database and Redis, but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            f"not set; {fix}",
            hint=fix,
            data={"field": "--no-embedded", "missing": missing},
        )


def stack_up(
    *,
    port: int,
    foreground: bool,
    timeout: float = STARTUP_TIMEOUT_S,
    components: tuple[str, ...] | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """Start the stack (or find it running) and return once every part is ready.

    `components` None is the embedded stack; otherwise only those run, against
    DATABASE_URL and DISPATCH_REDIS_URL. With `foreground`, this process
    becomes the supervisor and never returns.
    """
    if components is not None:
        external_services_check()
    # Before anything is created: the supervisor and its children inherit
    # the umask, so the database, logs and sockets are owner-only too.
    home.owner_only_umask()
    home.ensure_home()
    # A home made by an older dispatch (or another umask) is tightened here.
    home.home_secure()
    home.secret_key_ensure()
    with _up_lock():
        pid = running_supervisor_pid()
        if pid is not None:
            state = read_state()
            _same_components_check(state, components=components, host=host)
            return up_result("already_running", pid=pid, state=state)
        _reap_stale()
        port = preflight(port=port, components=components)
        if components is None or "web" in components:
            # One place migrates: the web part, which every install runs.
            migrate_database()
        argv = supervise_argv(
            port=port,
            startup_timeout=timeout,
            foreground=foreground,
            components=components,
        )
        if foreground:
            sys.stdout.flush()
            sys.stderr.flush()
            # exec keeps the pid (for systemd and the like) and gives the
            # process the `supervise --home` cmdline that `down` checks for.
            os.execve(argv[0], argv, _supervisor_env(host=host))
        began = time.monotonic()
        log = home.log_file("supervisor")
        with log.open("ab") as handle:
            offset = handle.tell()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=_supervisor_env(host=host),
                cwd=home.home_dir(),
                start_new_session=True,
            )
        result = _wait_ready(proc, timeout=timeout, log=log, log_offset=offset)
        result["elapsed_s"] = round(time.monotonic() - began, 2)
        return result


def _same_components_check(
    state: dict[str, Any] | None,
    *,
    components: tuple[str, ...] | None,
    host: str | None,
) -> None:
    """A running supervisor only answers for an `up` asking the same thing."""
    state = state or {}
    running = [name for name in (state.get("components") or {}) if name != "redis"]
    if components is None:
        same = bool(state.get("embedded", True))
    else:
        same = not state.get("embedded", True) and set(components) == set(running)
    if same and (host is None or host == state.get("host")):
        return
    fix = (
        "give each `dispatch up` its own DISPATCH_HOME (they share the "
        "database through DATABASE_URL), or `dispatch down` this one first"
    )
    raise ValidationError(
        f"DISPATCH_HOME {home.home_dir()} already runs "
        f"{', '.join(running) or 'nothing'} for host {state.get('host')!r}; {fix}",
        hint=fix,
        data={"running": running, "host": state.get("host")},
    )


def preflight(*, port: int, components: tuple[str, ...] | None = None) -> int:
    """Check everything `up` needs before spawning; return the port to use.

    Each failure is one typed error whose message names the fix.
    """
    from dispatchsite.core.config import load_policy
    from lanes.appserver.binary import preflight_config, resolve_codex_argv

    load_policy()
    if components is None or "worker" in components:
        resolve_codex_argv(settings.DISPATCH_CODEX_BIN)
        preflight_config(settings.DISPATCH_CODEX_BIN, dict(os.environ))
    if settings.DISPATCH_REDIS_PRIVATE:
        find_redis_server()
        check_socket_path(home.redis_socket_path())
    elif not redis_reachable(settings.REDIS_URL, timeout=2.0):
        fix = "start that Redis, or unset DISPATCH_REDIS_URL to use a private one"
        raise ValidationError(
            f"Redis at {settings.DISPATCH_REDIS_URL} is unreachable; {fix}", hint=fix
        )
    if components is not None and "web" not in components:
        return port  # nothing listens
    return resolve_port(port)


def resolve_port(port: int) -> int:
    """`port` if 127.0.0.1 can bind it, or a free one for port 0."""
    if not 0 <= port <= 65535:
        raise ValidationError(
            f"--port {port} is not a TCP port; use 1-65535, or 0 for a free one",
            hint="use --port 0 for a free port",
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # daphne (twisted) binds with SO_REUSEADDR; do the same so a port in
        # TIME_WAIT is not reported busy, while a listener still is.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            fix = "choose another with --port N, or --port 0 for a free one"
            raise ValidationError(
                f"port {port} on 127.0.0.1 is in use; {fix}",
                hint=fix,
                data={"port": port},
            ) from None
        return int(probe.getsockname()[1])


def migrate_database() -> None:
    from django.core.management import call_command

    try:
        call_command("migrate", interactive=False, verbosity=0)
    except Exception as exc:
        raise DispatchError(
            f"cannot migrate the database: {exc}",
            hint="run `dispatch doctor`; `dispatch registry migrate` backs up first",
        ) from exc
    # Celery beat (started next) runs what the apps scheduled (journal upkeep).
    beat_entries_ensure()


def _wait_ready(
    proc: subprocess.Popen[bytes], *, timeout: float, log: Path, log_offset: int
) -> dict[str, Any]:
    # The supervisor enforces `timeout` itself and exits with its failure in
    # the state file; the extra time covers its orderly shutdown.
    deadline = time.monotonic() + timeout + DOWN_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        state = read_state()
        if code is not None:
            failure = (state or {}).get("failure")
            if state and state.get("pid") == proc.pid and failure:
                home.unlink_quietly(home.state_file())
                raise startup_failure_error(failure)
            tail = log_tail(log, offset=log_offset)
            raise DispatchError(
                f"the supervisor exited with {code}: "
                f"{tail[-1] if tail else 'no output'}",
                hint=f"see {log}",
                data={"component": "supervisor", "stderr_tail": tail},
            )
        if state and state.get("pid") == proc.pid and state.get("phase") == "running":
            return up_result("started", pid=proc.pid, state=state)
        time.sleep(0.1)
    # Our own unreaped child, so its pid cannot have been reused.
    proc.terminate()
    try:
        proc.wait(timeout=DOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
    _reap_stale()
    raise DispatchError(
        f"the supervisor did not report ready or failed within {timeout:g}s",
        hint=f"see {log}",
    )


@contextmanager
def _up_lock() -> Iterator[None]:
    """Serialize concurrent `up`s so only one spawns a supervisor."""
    fd = os.open(home.up_lockfile(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + UP_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DispatchError(
                        "another `dispatch up` is still starting the stack",
                        hint="wait for it, then run `dispatch daemon status`",
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _supervisor_env(*, host: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DISPATCH_HOME"] = str(home.home_dir())
    if host:
        env["DISPATCH_HOST"] = host
    env.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- down ---------------------------------------------------------------------


def stack_down(*, timeout: float = DOWN_TIMEOUT_S) -> dict[str, Any]:
    """Stop the supervisor and everything it started; never a stranger's pid."""
    result: dict[str, Any] = {
        "status": "not_running",
        "stopped": False,
        "pidfile": str(home.supervisor_pidfile()),
        "pids": [],
    }
    if not home.run_dir().is_dir():
        return result
    pid = running_supervisor_pid()
    state = read_state()
    recorded = _recorded_processes(state)
    if pid is None:
        # A supervisor killed with -9 leaves its children running.
        result["pids"] = _stop_recorded(recorded)
        _remove_stale_files()
        return result
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and supervisor_alive(pid):
        time.sleep(0.05)
    if supervisor_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while supervisor_alive(pid) and time.monotonic() < deadline + 2:
            time.sleep(0.05)
    # The supervisor stops its children; this catches any it could not.
    _stop_recorded(recorded)
    pids = [pid, *(p for p, _ in recorded)]
    # Only pids proven ours above.
    wait_dead(pids, timeout=DEAD_WAIT_S)
    _remove_stale_files()
    result.update(status="stopped", stopped=True, pids=pids)
    return result


def _recorded_processes(state: dict[str, Any] | None) -> list[tuple[int, str | None]]:
    """(pid, start token) of every child and the app-server in `state`."""
    if not state:
        return []
    found = []
    for info in (state.get("components") or {}).values():
        if isinstance(info, dict) and isinstance(info.get("pid"), int):
            found.append((info["pid"], info.get("pid_start")))
    app_server = state.get("app_server")
    if isinstance(app_server, dict) and isinstance(app_server.get("pid"), int):
        found.append((app_server["pid"], app_server.get("pid_start")))
    return found


def _stop_recorded(recorded: list[tuple[int, str | None]]) -> list[int]:
    stopped = []
    for pid, token in recorded:
        if same_process(pid, token):
            stop_verified(pid, token, grace=STOP_GRACE_S)
            stopped.append(pid)
    return stopped


def _reap_stale() -> None:
    """Clean up after a supervisor that died without its shutdown (kill -9)."""
    _stop_recorded(_recorded_processes(read_state()))
    _remove_stale_files()


def _remove_stale_files() -> None:
    if running_supervisor_pid() is not None:
        return
    home.unlink_quietly(home.supervisor_pidfile())
    home.unlink_quietly(home.state_file())
    if settings.DISPATCH_REDIS_PRIVATE:
        home.unlink_quietly(home.redis_socket_path())
