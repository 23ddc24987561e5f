"""Request/reply to the worker that owns a host's app-server.

Only the worker talks to `codex app-server`. Everyone else pushes a command
on the host's Redis list (lanes.worker.rpc_queue) with a private reply list
and waits with a timeout; wake-ups (`notify_worker`) use the channel layer
(`dispatch.appserver.<host>`). The channel layer is at-most-once, so anything
that must not be lost is written to the DB before the wake-up is sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import (
    AppServerError,
    HostUnavailableError,
    LaneBusyError,
    NotFoundError,
    ValidationError,
)
from lanes.appserver.protocol import (
    is_invalid_request_error,
    is_not_found_error,
    is_thread_missing_error,
    is_unknown_method_error,
    is_unsteerable_turn_error,
)
from lanes.worker.rpc_queue import WorkerGone, rpc_call

# channels, channels_redis and redis are imported inside the functions that
# talk to the worker: read-only CLI calls never pay for them.

DAEMON_HINT = "start it with `dispatch up` (check `dispatch daemon status`)"


def command_channel(host: str) -> str:
    return f"dispatch.appserver.{host}"


class RpcFailed(AppServerError):
    """The app-server answered a request with a JSON-RPC error.

    The subclasses below are the answers that mean the user's request was
    wrong, not the app-server: they keep `RpcFailed` (callers that recover
    from one message still catch them) but carry the user-facing code.
    """

    def __init__(
        self, message: str, *, rpc_code: int | None = None, hint: str = ""
    ) -> None:
        super().__init__(message, hint=hint, data={"rpc_code": rpc_code})
        self.rpc_code = rpc_code
        # Set once rpc_failure chose the kind; tests script bare RpcFailed.
        self.classified = False


class RpcInvalid(ValidationError, RpcFailed):
    """A malformed id or a value outside an enum (JSON-RPC invalid request)."""


class RpcNotFound(NotFoundError, RpcFailed):
    """The thread, turn or rollout the request named does not exist."""


class RpcBusy(LaneBusyError, RpcFailed):
    """The running turn cannot take this input now (a compaction, a review)."""


BUSY_HINT = (
    "wait for the running turn to end (`dispatch watch <lane>`), or queue the "
    "message: `dispatch send <lane> TEXT --queue`"
)


def rpc_failure(
    message: str, *, rpc_code: int | None = None, method: str | None = None
) -> RpcFailed:
    """The one mapping of app-server error answers to dispatch error kinds."""
    error = _rpc_failure(message, rpc_code=rpc_code, method=method)
    error.classified = True
    return error


def _rpc_failure(
    message: str, *, rpc_code: int | None, method: str | None
) -> RpcFailed:
    if method is not None and is_unknown_method_error(message, method):
        # This codex lacks the method: the app-server's limit, not the user's.
        return RpcFailed(message, rpc_code=rpc_code)
    if is_unsteerable_turn_error(message):
        return RpcBusy(
            f"the lane is running a turn that takes no new input ({message})",
            rpc_code=rpc_code,
            hint=BUSY_HINT,
        )
    if is_invalid_request_error(message, rpc_code=rpc_code):
        return RpcInvalid(
            message,
            rpc_code=rpc_code,
            hint="check the values passed (see `dispatch schema`)",
        )
    if is_not_found_error(message) or is_thread_missing_error(message):
        return RpcNotFound(message, rpc_code=rpc_code)
    return RpcFailed(message, rpc_code=rpc_code)


# host -> monotonic time until which its lease counts as checked; spares
# the web process a lease query on every request.
_lease_checked_until: dict[str, float] = {}
LEASE_RECHECK_SECONDS = 2.0


def worker_alive(host: str) -> bool:
    from lanes.models import WorkerLease

    lease = WorkerLease.objects.filter(host=host).first()
    return lease is not None and lease.is_fresh()


def host_unavailable(host: str, detail: str = "") -> HostUnavailableError:
    _lease_checked_until.pop(host, None)
    return HostUnavailableError(
        f"no dispatch worker is running for host {host!r}{detail}",
        hint=f"{DAEMON_HINT}; on another machine: `dispatch worker --host "
        f"{host}`; or move the lane: `dispatch lane move <lane> --host NAME`",
        data={"host": host},
    )


def require_worker(host: str) -> None:
    if time.monotonic() < _lease_checked_until.get(host, 0.0):
        return
    if not worker_alive(host):
        # At once, without sending: nobody would read the command channel.
        raise host_unavailable(host)
    _lease_checked_until[host] = time.monotonic() + LEASE_RECHECK_SECONDS


def _round_trip(host: str, message: dict[str, Any], timeout: float) -> Any:
    # Plain Redis lists, waited on in this thread (lanes.worker.rpc_queue):
    # the channel layer's request/reply cost several round trips and two
    # hops through the event loop per call.
    try:
        reply = rpc_call(host, message, timeout, alive=lambda: worker_alive(host))
    except WorkerGone as gone:
        method = message.get("method")
        raise host_unavailable(
            host,
            f" (it stopped while running {method}, which may or may not have "
            "taken effect)"
            if gone.taken
            else f" (it stopped before taking {method}, which was withdrawn)",
        ) from None
    if reply is None:
        raise AppServerError(
            f"the worker for host {host!r} did not answer {message.get('method')} "
            f"within {timeout:g} s",
            hint=DAEMON_HINT,
        )
    return reply


def call_worker(host: str, message: dict[str, Any], *, timeout: float) -> Any:
    from redis.exceptions import ConnectionError as RedisConnectionError

    require_worker(host)
    try:
        reply = _round_trip(host, message, timeout)
    except (RedisConnectionError, OSError) as exc:
        raise AppServerError(
            f"cannot reach the dispatch channel layer: {exc}", hint=DAEMON_HINT
        ) from None
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise rpc_failure(
            f"app-server error: {error.get('message', 'unknown error')}",
            rpc_code=error.get("code"),
            method=message.get("method"),
        )
    return reply.get("result")


def rpc(
    host: str, method: str, params: dict[str, Any], *, timeout: float | None = None
) -> Any:
    """Call an app-server method on `host` and return its result."""
    timeout = timeout or settings.DISPATCH_RPC_TIMEOUT
    return call_worker(
        host,
        {
            "type": "appserver.rpc",
            "method": method,
            "params": params,
            "timeout": timeout,
        },
        timeout=timeout + 2,
    )


def notify_worker(host: str, message: dict[str, Any]) -> None:
    """Fire-and-forget wake-up (e.g. drain a queue); losing it is harmless."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        async_to_sync(get_channel_layer().send)(command_channel(host), message)
    except (RedisConnectionError, OSError):
        pass


def classify_rpc_error(exc: RpcFailed) -> RpcFailed:
    """`exc` as the error kind it means (a no-op for one already classified)."""
    if exc.classified:
        return exc
    return rpc_failure(exc.message, rpc_code=exc.rpc_code)


@dataclass
class Tolerated:
    """The app-server error a `rpc_errors` block let pass, if any."""

    error: RpcFailed | None = None


@contextlib.contextmanager
def rpc_errors(*, tolerate: Callable[[str], bool] | None = None) -> Iterator[Tolerated]:
    """Raise an app-server error in the block as the dispatch error it means.

    An error whose message `tolerate` accepts ends the block quietly instead
    and is left in the yielded `Tolerated`, for a caller that recovers from
    that one case (a thread codex no longer has, a method this codex lacks).
    """
    tolerated = Tolerated()
    try:
        yield tolerated
    except RpcFailed as exc:
        if tolerate is None or not tolerate(exc.message):
            raise classify_rpc_error(exc) from None
        tolerated.error = exc
