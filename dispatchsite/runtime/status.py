"""Reading the daemon's state: the supervisor's pid, its state file, `up`'s result.

Everything here reads files and /proc and changes nothing, so `daemon status`,
`doctor` and `registry migrate` can ask without acting. The supervisor is
found through run/supervisor.pid, and a pid is only trusted when /proc shows
that it runs `supervise --home <this DISPATCH_HOME>`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from dispatchsite.core.errors import AppServerError, DispatchError
from dispatchsite.runtime import home
from dispatchsite.runtime.processes import pid_alive, proc_cmdline


def read_supervisor_pid() -> int | None:
    try:
        text = home.supervisor_pidfile().read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_our_supervisor(pid: int) -> bool:
    """True only if `pid` runs `... supervise --home <this DISPATCH_HOME>`."""
    argv = proc_cmdline(pid)
    if "supervise" not in argv or "--home" not in argv:
        return False
    index = argv.index("--home")
    return index + 1 < len(argv) and argv[index + 1] == str(home.home_dir())


def supervisor_alive(pid: int) -> bool:
    return pid_alive(pid) and is_our_supervisor(pid)


def running_supervisor_pid() -> int | None:
    pid = read_supervisor_pid()
    if pid is not None and supervisor_alive(pid):
        return pid
    return None


def read_state() -> dict[str, Any] | None:
    """run/supervisor.json as the supervisor last wrote it."""
    return home.read_json(home.state_file())


def up_result(status: str, *, pid: int, state: dict[str, Any] | None) -> dict[str, Any]:
    state = state or {}
    return {
        "status": status,
        "started": status == "started",
        "url": state.get("url"),
        "pid": pid,
        "pidfile": str(home.supervisor_pidfile()),
        "state_file": str(home.state_file()),
        "log_dir": str(home.log_dir()),
        "redis": {"url": state.get("redis_url"), "private": state.get("redis_private")},
        "components": _components(state),
        "app_server": _app_server(state),
    }


def startup_failure_error(failure: dict[str, Any]) -> DispatchError:
    """The typed error `up` raises for a stack that did not come up."""
    component = failure.get("component")
    hint = f"see {failure.get('log')}; `dispatch doctor` checks the setup"
    error_type = AppServerError if component == "worker" else DispatchError
    return error_type(str(failure.get("message")), hint=hint, data=failure)


def stack_status() -> dict[str, Any]:
    """The daemon's processes as plain data; reads files, changes nothing."""
    pid = running_supervisor_pid()
    state = read_state() if pid is not None else None
    if state is not None and state.get("pid") != pid:
        state = None
    stale_pid = read_supervisor_pid() if pid is None else None
    return {
        "running": pid is not None,
        "pid": pid,
        "url": (state or {}).get("url"),
        "port": (state or {}).get("port"),
        "phase": (state or {}).get("phase"),
        "started_at": (state or {}).get("started_at"),
        "pidfile": str(home.supervisor_pidfile()),
        "stale_pidfile": stale_pid is not None,
        "log_dir": str(home.log_dir()),
        "redis": {
            "url": settings.REDIS_URL,
            "private": settings.DISPATCH_REDIS_PRIVATE,
        },
        "components": _components(state or {}),
        "app_server": _app_server(state or {}) if pid is not None else None,
        "journal": _journal(state or {}) if pid is not None else None,
    }


def _components(state: dict[str, Any]) -> dict[str, Any]:
    components = {}
    for name, info in (state.get("components") or {}).items():
        components[name] = {
            key: info.get(key)
            for key in (
                "pid",
                "status",
                "restarts",
                "last_exit",
                "started_at",
                "ready_at",
                "log",
            )
        }
    return components


def _worker(state: dict[str, Any]) -> dict[str, Any]:
    """The running worker's own state file; {} when it is not this stack's."""
    host = state.get("host") or settings.DISPATCH_HOST
    worker_pid = ((state.get("components") or {}).get("worker") or {}).get("pid")
    worker = home.read_json(home.worker_state_file(host)) or {}
    if worker_pid is None or worker.get("pid") != worker_pid:
        return {}
    return worker


def _journal(state: dict[str, Any]) -> dict[str, Any] | None:
    """Whether the worker can write the journal (lanes.worker.journal_health)."""
    journal = _worker(state).get("journal")
    return journal if isinstance(journal, dict) else None


def _app_server(state: dict[str, Any]) -> dict[str, Any] | None:
    worker = _worker(state)
    recorded = state.get("app_server") or {}
    pid = worker.get("app_server_pid", recorded.get("pid"))
    if pid is None:
        return None
    return {
        "pid": pid,
        "version": worker.get("app_server_version", recorded.get("version")),
        "worker_pid": worker.get("pid", recorded.get("worker_pid")),
        "ready_at": worker.get("ready_at"),
        "heartbeat_at": worker.get("heartbeat_at"),
    }
