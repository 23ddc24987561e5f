"""Request/reply to a host's worker over two plain Redis lists.

A caller pushes `{"method", "params", "reply_key", "expires_at", ...}` onto
`dispatch:rpc:<host>` and blocks on its own `reply_key` list; the worker
pops the command, runs it and pushes the answer there. Each side is one
Redis round trip (the push and its expiry are pipelined), where the channel
layer costs four per send plus a poll of the process's shared inbox, and the
caller waits in its own thread with no hop to an event loop.

Like the channel layer, this is at-most-once: whatever must survive is in
the DB before the command is sent. Both lists expire, and the worker drops
a command whose caller has already given up (`expires_at`), so a command
queued while no worker ran never starts a turn nobody waits for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings

# Lists outlive a crashed reader by this much, then Redis drops them.
KEY_TTL_SECONDS = 120
# Hosts' clocks may differ a little: a command counts as abandoned only
# this long after its caller's deadline.
CLOCK_SLACK_SECONDS = 5.0


log = logging.getLogger("dispatch.worker")


def rpc_key(host: str) -> str:
    return f"dispatch:rpc:{host}"


_clients: dict[str, Any] = {}


def sync_client() -> Any:
    """One pooled client per process (thread-safe; views share it)."""
    import redis

    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        # No socket_timeout: a BLPOP waits up to the call's own timeout.
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=None)
    return client


class WorkerGone(Exception):
    """The worker stopped heartbeating while a caller waited for its reply."""

    def __init__(self, *, taken: bool) -> None:
        super().__init__("worker gone")
        # False: the command was still queued and has been withdrawn, so it
        # never ran; True: the worker had taken it, its outcome is unknown.
        self.taken = taken


# While waiting, a caller looks at the worker's lease this often, so a
# worker killed mid-call costs the lease's lifetime, not the whole timeout.
ALIVE_CHECK_SECONDS = 2.0


def rpc_call(
    host: str,
    message: dict[str, Any],
    timeout: float,
    *,
    alive: Callable[[], bool] | None = None,
) -> Any:
    """The worker's reply to `message`, or None after `timeout` seconds.

    Raises WorkerGone as soon as `alive()` says the worker is dead.
    """
    reply_key = f"dispatch:reply:{uuid.uuid4().hex}"
    command = {**message, "reply_key": reply_key, "expires_at": time.time() + timeout}
    payload = json.dumps(command)
    client = sync_client()
    pipe = client.pipeline(transaction=False)
    pipe.rpush(rpc_key(host), payload)  # FIFO with the BLPOP
    pipe.expire(rpc_key(host), KEY_TTL_SECONDS)
    pipe.execute()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        wait = min(left, ALIVE_CHECK_SECONDS) if alive is not None else left
        # BLPOP counts whole seconds on old servers: round up.
        popped = client.blpop([reply_key], timeout=max(1, int(wait + 0.999)))
        if popped is not None:
            return json.loads(popped[1])
        if alive is not None and not alive():
            withdrawn = client.lrem(rpc_key(host), 1, payload)
            raise WorkerGone(taken=withdrawn == 0)
    return None


class RpcInbox:
    """The worker's end: pop commands, push replies (redis.asyncio)."""

    def __init__(self, host: str) -> None:
        import redis.asyncio

        self.key = rpc_key(host)
        self.client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_timeout=None
        )

    async def receive(self) -> dict[str, Any] | None:
        """The next live command; None for one whose caller gave up."""
        popped = await self.client.blpop([self.key], timeout=0)
        if popped is None:  # only with a timeout; kept for the types
            return None
        command = dict(json.loads(popped[1]))
        if float(command.get("expires_at") or 0) + CLOCK_SLACK_SECONDS < time.time():
            return None
        return command

    async def give_back(self, command: dict[str, Any]) -> None:
        """Return a popped command to the head of the list, for the next owner.

        A worker that is stopping (it lost the host) finishes this first:
        cancelled half way, the command would be lost or its fate unknown.
        """
        pushing = asyncio.ensure_future(
            self.client.lpush(self.key, json.dumps(command))
        )
        try:
            await asyncio.shield(pushing)
        except asyncio.CancelledError:
            await pushing
            raise
        finally:
            what = command.get("method") or command.get("type")
            log.warning("handed a %s command back: another worker holds the host", what)

    async def reply(self, reply_key: str, reply: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(reply_key, json.dumps(reply, default=str))
        pipe.expire(reply_key, KEY_TTL_SECONDS)
        await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
