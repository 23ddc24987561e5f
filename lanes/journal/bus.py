"""The journal bus: how a committed batch is announced to the web processes.

With Redis (every real deployment) announcements are Redis pub/sub
messages on JOURNAL_CHANNEL: one PUBLISH per batch, pushed to each web
process's one subscription, which reads whatever has arrived without a
round trip per message. A channel-layer group costs its receiver four
round trips per message (channels_redis keeps a backup queue per
receive), and under load a web process could not keep up with the
worker's batches. Pub/sub keeps nothing for a subscriber that is away; the
hub's reconcile tick reads what it missed from the journal, as it does for
anything lost (lanes.realtime.hub).

Without Redis (the test settings' in-memory channel layer) the group
JOURNAL_GROUP of the channel layer carries the same messages.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import weakref
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

JOURNAL_GROUP = "lanes.journal.writer"
JOURNAL_CHANNEL = "dispatch:journal"


def journal_message(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The message announcing committed `parts`, one per lane:
    `{"thread_id", "first_seq", "last_seq", "texts"?}`.

    `published_at` (this process's clock) lets a hub tell a late message
    from a lost one: it has seen everything published before the newest
    message it received (lanes.realtime.hub.LaneHub.reconcile_loop)."""
    return {"type": "lanes.events", "batches": parts, "published_at": time.time()}


def over_redis() -> bool:
    backend = str(settings.CHANNEL_LAYERS["default"]["BACKEND"])
    return backend.endswith("RedisChannelLayer")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=str).encode()


@functools.cache
def sync_client() -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


# One client per event loop: redis.asyncio connections belong to the loop
# that opened them.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)


def async_client() -> Any:
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    return client


async def journal_announce(parts: list[dict[str, Any]]) -> None:
    """Announce from async code (the worker); raises if the bus is down."""
    message = journal_message(parts)
    if over_redis():
        await async_client().publish(JOURNAL_CHANNEL, encode(message))
    else:
        await get_channel_layer().group_send(JOURNAL_GROUP, message)


def journal_announce_sync(parts: list[dict[str, Any]]) -> None:
    """Announce from sync code (services writing dispatch/ events)."""
    message = journal_message(parts)
    if over_redis():
        sync_client().publish(JOURNAL_CHANNEL, encode(message))
    else:
        from asgiref.sync import async_to_sync

        async_to_sync(get_channel_layer().group_send)(JOURNAL_GROUP, message)


class JournalSubscription:
    """One process's subscription to the announcements."""

    def __init__(self) -> None:
        self.client: Any = None
        self.pubsub: Any = None
        self.channel: str | None = None

    async def open(self) -> None:
        """Subscribe; raises while the bus is unreachable."""
        await self.close()
        if over_redis():
            import redis.asyncio

            # No socket timeout: the subscription waits as long as nothing
            # is published (redis-py 8 would otherwise give up after 5 s).
            self.client = redis.asyncio.Redis.from_url(
                settings.REDIS_URL, socket_timeout=None
            )
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            await self.pubsub.subscribe(JOURNAL_CHANNEL)
        else:
            layer = get_channel_layer()
            self.channel = await layer.new_channel()
            await layer.group_add(JOURNAL_GROUP, self.channel)

    async def receive(self) -> dict[str, Any]:
        """The next announcement; raises when the bus goes away."""
        if self.pubsub is not None:
            while True:
                raw = await self.pubsub.get_message(timeout=None)
                if raw is not None and raw.get("type") == "message":
                    message: dict[str, Any] = json.loads(raw["data"])
                    return message
        assert self.channel is not None, "receive before open"
        received: dict[str, Any] = await get_channel_layer().receive(self.channel)
        return received

    async def close(self) -> None:
        client, self.client = self.client, None
        pubsub, self.pubsub = self.pubsub, None
        channel, self.channel = self.channel, None
        try:
            if pubsub is not None:
                await pubsub.aclose()
                await client.aclose()
            if channel is not None:
                await get_channel_layer().group_discard(JOURNAL_GROUP, channel)
        except Exception:  # the bus is gone already: nothing left to undo
            pass
