"""Calls to a lane's app-server, through its host's worker (lanes.worker.gateway)."""

from __future__ import annotations

from typing import Any

from dispatchsite.core.errors import AppServerError
from lanes.appserver.protocol import THREAD_RESUME, is_thread_missing_error
from lanes.models import Lane, WorkerLease
from lanes.worker import gateway


def rpc(lane: Lane, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
    return gateway.rpc(lane.host, method, params, **kwargs)


def thread_load(lane: Lane) -> None:
    """Load the thread into this host's app-server (metadata only)."""
    with gateway.rpc_errors():
        rpc(lane, THREAD_RESUME, {"threadId": lane.thread_id, "excludeTurns": True})


def lane_rpc(lane: Lane, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
    """A write on a lane's thread; a thread the app-server has not loaded
    (restored from the archive, or never resumed) is loaded once and retried."""
    try:
        return rpc(lane, method, params, **kwargs)
    except gateway.RpcFailed as exc:
        if not is_thread_missing_error(exc.message):
            raise
    thread_load(lane)
    with gateway.rpc_errors():
        return rpc(lane, method, params, **kwargs)


def thread_read(
    *, host: str, thread_id: str, timeout: float | None = None
) -> dict[str, Any]:
    """Thread metadata (no turns); NotFoundError when codex has no such thread."""
    with gateway.rpc_errors():
        result = gateway.rpc(
            host,
            "thread/read",
            {"threadId": thread_id, "includeTurns": False},
            timeout=timeout,
        )
    thread = result.get("thread") if isinstance(result, dict) else None
    if not isinstance(thread, dict) or thread.get("id") != thread_id:
        raise AppServerError(
            f"thread/read returned an unexpected payload for {thread_id}",
            hint="check the codex version (`dispatch doctor`)",
        )
    return thread


def app_server_version(host: str) -> str:
    lease = WorkerLease.objects.filter(host=host).first()
    return (lease.app_server_version if lease else "") or "unknown"
