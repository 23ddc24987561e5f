"""One journal-bus subscription per web process, fanned out in memory.

The worker announces each journal batch on the journal bus
(lanes.journal.bus): `{"type": "lanes.events", "batches": [<part>, ...],
"published_at"}`, one part per lane, `{"thread_id", "first_seq",
"last_seq", "texts"?}`. `texts` are the batch's frames of that lane,
already JSON-encoded, seqs first_seq..last_seq in order; a part without
`texts` (too large to carry) only names the range, and sockets read it
from the journal.

The hub receives each announcement once and gives each socket every part
it watches in one call, so a socket on many lanes sends one websocket
message per batch.

Sockets need the bus for nothing else, so a Redis restart does not touch
them: while the hub cannot reach it (one warning line per outage, no
traceback) its reconcile tick feeds them from the journal, and it
subscribes again as soon as Redis is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from channels.db import database_sync_to_async

from dispatchsite.core.dbthreads import connection_keeping_pool
from lanes.journal.bus import JournalSubscription
from lanes.journal.reader import journal_heads

log = logging.getLogger("dispatch.websocket")

# How often the hub compares the journal with what it has seen, so a dropped
# *last* message (no later one reveals the gap) is refilled within ~2 ticks.
# Longer than any healthy publish-to-receive delay: a message that is only
# late must not send every socket to the DB, least of all under load.
RECONCILE_SECONDS = 3.0
# A row counts as announced-and-lost only once the hub has received a message
# published this long after the row was journaled (publishing follows the
# commit by a batch at most; clocks of several hosts may differ a little).
PUBLISH_MARGIN_SECONDS = 1.0

# Journal reads run off Django's shared sync thread, so a replay never waits
# behind a view. Tests on SQLite's in-memory database flip this: its shared
# cache locks whole tables, so a read beside a write would fail there.
THREAD_SENSITIVE = False


# Threads that keep their connection: a socket catching up reads the journal
# page by page, and a new connection per page would cost more than the page.
JOURNAL_READER_THREADS = 4


@functools.cache
def journal_readers() -> ThreadPoolExecutor:
    return connection_keeping_pool("ws-journal", JOURNAL_READER_THREADS)


def db(fn: Any) -> Any:
    if THREAD_SENSITIVE:
        return database_sync_to_async(fn, thread_sensitive=True)
    return database_sync_to_async(
        fn, thread_sensitive=False, executor=journal_readers()
    )


class Subscriber(Protocol):
    def feed(self, parts: list[dict[str, Any]]) -> None: ...


class LaneHub:
    """This process's one subscription to the journal's announcements.

    Lives while it has subscribers: the first one opens its subscription
    and receive loop, the last one to leave tears them down.
    """

    def __init__(self, layer: Any) -> None:
        # The channel layer this hub was made for: tests swap layers.
        self.layer = layer
        self.subscription: JournalSubscription | None = None
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        # Per lane: the highest seq any message announced, and the journal's
        # last seq (with when it was journaled) at the previous reconcile tick.
        self.seen: dict[str, int] = {}
        self.committed: dict[str, tuple[int, float]] = {}
        # The newest `published_at` among messages received, and when the
        # last message arrived (monotonic): how far behind the layer is.
        self.published_at = 0.0
        self.received_at = 0.0
        # Subscribed on the bus as it is now (a restarted Redis forgets
        # subscribers), and whether an outage was already reported.
        self.joined = False
        self.layer_down = False

    async def subscribe(self, thread_ids: list[str], subscriber: Subscriber) -> None:
        """Return once batches published from now on reach `subscriber`."""
        async with self.lock:
            if self.subscription is None:
                self.subscription = JournalSubscription()
                # Redis down: the receive loop subscribes once it is back,
                # and the socket follows the journal meanwhile.
                await self.join()
                self.tasks = [
                    asyncio.create_task(self.receive_loop()),
                    asyncio.create_task(self.reconcile_loop()),
                ]
            for thread_id in thread_ids:
                self.subscribers.setdefault(thread_id, set()).add(subscriber)

    async def unsubscribe(self, thread_ids: list[str], subscriber: Subscriber) -> None:
        async with self.lock:
            for thread_id in thread_ids:
                members = self.subscribers.get(thread_id, set())
                members.discard(subscriber)
                if not members:
                    self.subscribers.pop(thread_id, None)
                    self.seen.pop(thread_id, None)
                    self.committed.pop(thread_id, None)
            if self.subscribers or self.subscription is None:
                return
            for task in self.tasks:
                task.cancel()
            self.tasks = []
            subscription, self.subscription = self.subscription, None
            await subscription.close()
            self.joined = False

    async def join(self) -> bool:
        assert self.subscription is not None
        try:
            await self.subscription.open()
        except Exception as exc:
            self.layer_lost("subscribing to the journal bus", exc)
            self.joined = False
            return False
        self.joined = True
        if self.layer_down:
            self.layer_down = False
            log.info("lane hub: the journal bus is back; live again")
        return True

    def layer_lost(self, doing: str, exc: Exception) -> None:
        """Say once per outage that the layer is gone: sockets carry on."""
        if not self.layer_down:
            self.layer_down = True
            log.warning(
                "lane hub lost the journal bus (%s: %s); websockets follow"
                " the journal until it is back",
                doing,
                exc,
            )

    async def receive_loop(self) -> None:
        assert self.subscription is not None
        while True:
            if not self.joined and not await self.join():
                await asyncio.sleep(0.5)
                continue
            try:
                message = await self.subscription.receive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: sockets refill gaps
                self.layer_lost("receiving", exc)
                # A restarted Redis forgot the subscription: subscribe again.
                self.joined = False
                await asyncio.sleep(0.5)
                continue
            if message.get("type") == "lanes.events":
                self.received_at = time.monotonic()
                self.published_at = max(
                    self.published_at, message.get("published_at") or time.time()
                )
                self.dispatch(message.get("batches") or [])

    def dispatch(self, parts: list[dict[str, Any]]) -> None:
        fed: dict[Subscriber, list[dict[str, Any]]] = {}
        for part in parts:
            thread_id = part.get("thread_id", "")
            members = self.subscribers.get(thread_id)
            if not members:
                continue
            self.seen[thread_id] = max(self.seen.get(thread_id, 0), part["last_seq"])
            for subscriber in members:
                fed.setdefault(subscriber, []).append(part)
        for subscriber, its_parts in fed.items():
            subscriber.feed(its_parts)

    async def reconcile_loop(self) -> None:
        """Nudge sockets about rows committed a tick ago but never announced.

        A row's announcement is lost (the layer dropped it, or the worker
        died before publishing) once the hub has received a message
        published after that row was journaled, or nothing at all for a
        whole tick; the sockets then read it from the journal. Until then
        the message is only late: under load the layer runs behind, and
        sending every socket to the database then would only put it further
        behind. One cheap query per watched lane per tick, per process.
        """
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            lanes = list(self.subscribers)
            try:
                latest = await db(journal_heads)(lanes)
            except Exception as exc:  # the DB busy or restarting: next tick
                log.warning("lane hub reconcile failed: %s", exc)
                continue
            self.dispatch(self.lost_announcements(lanes))
            self.committed = latest

    def lost_announcements(self, lanes: list[str]) -> list[dict[str, Any]]:
        idle = time.monotonic() - self.received_at >= RECONCILE_SECONDS
        lost = []
        for thread_id in lanes:
            seq, journaled_at = self.committed.get(thread_id, (0, 0.0))
            if seq <= self.seen.get(thread_id, 0):
                continue
            if idle or journaled_at + PUBLISH_MARGIN_SECONDS <= self.published_at:
                lost.append({"thread_id": thread_id, "first_seq": seq, "last_seq": seq})
        return lost


# One hub per event loop (tests run one loop each; daphne has one).
HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LaneHub] = (
    weakref.WeakKeyDictionary()
)


def lane_hub(layer: Any) -> LaneHub:
    loop = asyncio.get_running_loop()
    hub = HUBS.get(loop)
    if hub is None or hub.layer is not layer:
        hub = HUBS[loop] = LaneHub(layer)
    return hub
