"""Websocket: a lane's events, replayed from the journal, then streamed live.

    ws://HOST/ws/lanes/<selector>/events?after=<seq>[&token=<token>]

Every frame is one journal row (`LaneEvent.as_frame`), sent exactly once and
in seq order. A websocket message carries one or more frames, one JSON
object per line (frames ready together go out together). `after` defaults
to 0 (the whole journal); `after=latest` starts at the current end.
Auth: `Authorization: Bearer <token>`, `?token=`, or the session of a
logged-in staff user on a same-origin page (the admin live page).
Close codes: 4400 bad request, 4401 auth, 4404 unknown lane.

The channel layer is at-most-once and drops silently past capacity, so it is
only a fast path: the consumer subscribes to the lane *before* replaying, so
nothing falls between replay and live, and whenever a live message does not
continue from the last frame sent (a drop, or `frames` left out because the
batch was large) it reads the missing range from the journal. Live messages
wait in a bounded buffer while the socket is busy; past MAX_PENDING frames
the buffer is dropped and the consumer pages the journal instead, which is
lossless because every published row is committed first.

Sockets do not join the lane's group themselves: a per-process LaneHub is
the one group member per lane and hands each message to the local sockets
of that lane. channels_redis receives one message per four Redis round
trips, serially per process, so a group member per socket would cost
watchers x lanes Redis messages per journal batch; the hub costs one per
lane. The hub also listens on JOURNAL_GROUP for one message per journal
batch carrying every lane's part (`{"type": "lanes.events", "batches":
[<lane.events message>, ...]}`), which a publisher can use instead of one
message per lane to cut that cost by the number of busy lanes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import weakref
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dispatchsite.errors import DispatchError
from lanes.journal import JOURNAL_GROUP
from lanes.selectors import find_lane
from lanes.watch import journal_frames, journal_last_seq, journal_last_seqs

log = logging.getLogger("dispatch.websocket")

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL = 1011
# Journal rows per query when replaying or refilling.
PAGE_SIZE = 500
# Live frames buffered for a slow socket before switching to journal paging.
MAX_PENDING = 2000
# channels_redis forgets group members after group_expiry (a day by default);
# the hub renews its memberships well before that.
GROUP_REFRESH_SECONDS = 3600.0
# How often the hub compares the journal with what it has seen, so a dropped
# *last* message (no later one reveals the gap) is refilled within ~2 ticks.
# Longer than any healthy publish-to-receive delay: a message that is only
# late must not send every socket to the DB, least of all under load.
RECONCILE_SECONDS = 3.0


# Journal reads run off Django's shared sync thread, so a replay never waits
# behind a view. Tests on SQLite's in-memory database flip this: its shared
# cache locks whole tables, so a read beside a write would fail there.
THREAD_SENSITIVE = False


def db(fn: Any) -> Any:
    return database_sync_to_async(fn, thread_sensitive=THREAD_SENSITIVE)


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {key: values[-1] for key, values in parsed.items()}


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def same_origin(scope: dict[str, Any]) -> bool:
    """True unless a browser says the page came from another site.

    Session cookies ride along on cross-site websocket handshakes, so a
    session is only trusted when Origin names this host.
    """
    origin = header(scope, b"origin")
    if origin is None:
        return True
    host = header(scope, b"host") or ""
    return origin.split("://", 1)[-1].rstrip("/") == host


def lookup_lane(selector: str) -> tuple[str | None, int]:
    """(thread id or None, last journaled seq) for a read selector."""
    lane = find_lane(selector, fuzzy=True)
    if lane is None:
        return None, 0
    return lane.thread_id, journal_last_seq(lane.thread_id)


def token_valid(raw: str) -> bool:
    # Imported late: dispatchsite.auth pulls in ninja.
    from dispatchsite.auth import token_user

    return token_user(raw) is not None


def header_bearer(scope: dict[str, Any]) -> str | None:
    from dispatchsite.auth import bearer_from_headers

    return bearer_from_headers(scope.get("headers", []))


class LaneHub:
    """This process's one channel-layer subscription per watched lane.

    Lives while it has subscribers: the first one opens its channel and
    receive loop, the last one to leave tears them down.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.subscribers: dict[str, set[LaneEventsConsumer]] = {}
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        # Per lane: the highest seq any message announced, and the journal's
        # last seq at the previous reconcile tick.
        self.seen: dict[str, int] = {}
        self.committed: dict[str, int] = {}

    async def subscribe(self, thread_id: str, consumer: LaneEventsConsumer) -> None:
        """Return once messages published from now on reach `consumer`."""
        async with self.lock:
            if self.channel is None:
                # The default prefix: channels_redis pops every process-local
                # channel from one Redis list named after it.
                self.channel = await self.layer.new_channel()
                await self.layer.group_add(JOURNAL_GROUP, self.channel)
                self.tasks = [
                    asyncio.create_task(self.receive_loop(self.channel)),
                    asyncio.create_task(self.refresh_loop()),
                    asyncio.create_task(self.reconcile_loop()),
                ]
            members = self.subscribers.setdefault(thread_id, set())
            if not members:
                await self.layer.group_add(f"lane.{thread_id}", self.channel)
            members.add(consumer)

    async def unsubscribe(self, thread_id: str, consumer: LaneEventsConsumer) -> None:
        async with self.lock:
            members = self.subscribers.get(thread_id)
            if not members or consumer not in members:
                return
            members.discard(consumer)
            if members:
                return
            del self.subscribers[thread_id]
            self.seen.pop(thread_id, None)
            self.committed.pop(thread_id, None)
            assert self.channel is not None
            await self.layer.group_discard(f"lane.{thread_id}", self.channel)
            if not self.subscribers:
                await self.layer.group_discard(JOURNAL_GROUP, self.channel)
                for task in self.tasks:
                    task.cancel()
                self.tasks = []
                self.channel = None

    async def receive_loop(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: sockets refill gaps
                log.warning("lane hub receive failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            kind = message.get("type")
            if kind == "lanes.events":
                for part in message.get("batches") or ():
                    self.dispatch(part)
            elif kind == "lane.events":
                self.dispatch(message)

    def dispatch(self, message: dict[str, Any]) -> None:
        thread_id = message.get("thread_id", "")
        consumers = list(self.subscribers.get(thread_id, ()))
        if consumers:
            self.seen[thread_id] = max(self.seen.get(thread_id, 0), message["last_seq"])
        if consumers and message.get("frames"):
            # Encoded once here rather than once per socket.
            message["texts"] = [json.dumps(f) for f in message["frames"]]
        for consumer in consumers:
            consumer.feed(message)

    async def reconcile_loop(self) -> None:
        """Nudge sockets about rows committed a tick ago but never announced.

        A row committed before the previous tick has had a whole tick for
        its message to arrive; if none did, the layer dropped it (or the
        worker died before publishing), and the sockets read it from the
        journal. One cheap query per watched lane per tick, per process.
        """
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            lanes = list(self.subscribers)
            try:
                latest = await db(journal_last_seqs)(lanes)
            except Exception as exc:  # the DB busy or restarting: next tick
                log.warning("lane hub reconcile failed: %s", exc)
                continue
            for thread_id in lanes:
                committed = self.committed.get(thread_id, 0)
                if committed > self.seen.get(thread_id, 0):
                    self.dispatch(
                        {
                            "type": "lane.events",
                            "thread_id": thread_id,
                            "first_seq": committed,
                            "last_seq": committed,
                        }
                    )
            self.committed = latest

    async def refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            async with self.lock:
                if self.channel is None:
                    return
                await self.layer.group_add(JOURNAL_GROUP, self.channel)
                for thread_id in self.subscribers:
                    await self.layer.group_add(f"lane.{thread_id}", self.channel)


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


class LaneEventsConsumer(AsyncJsonWebsocketConsumer):
    thread_id = ""
    last_sent = 0
    pump_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        code = await self.open_stream()
        # Accept even to refuse: a close before accept becomes an HTTP 403
        # and the client would never see the 44xx code. On success the
        # handshake completes only once the group is joined, so a client
        # that is connected is also subscribed.
        await self.accept()
        if code is not None:
            await self.close(code=code)
            return
        self.pump_task = asyncio.create_task(self.pump())

    async def open_stream(self) -> int | None:
        """Subscribe to the lane; a close code when the stream cannot open."""
        if not await self.authorized():
            return CLOSE_UNAUTHORIZED
        selector = self.scope["url_route"]["kwargs"]["selector"]
        try:
            thread_id, last_seq = await db(lookup_lane)(selector)
        except DispatchError:  # e.g. an ambiguous selector
            return CLOSE_BAD_REQUEST
        if thread_id is None:
            return CLOSE_NOT_FOUND
        after = query_params(self.scope).get("after", "0")
        if after == "latest":
            self.last_sent = last_seq
        elif after.isdigit():
            self.last_sent = int(after)
        else:
            return CLOSE_BAD_REQUEST
        self.thread_id = thread_id
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.pending_frames = 0
        self.overflowed = False
        self.wake = asyncio.Event()
        await lane_hub(self.channel_layer).subscribe(thread_id, self)
        return None

    async def authorized(self) -> bool:
        raw = header_bearer(self.scope) or query_params(self.scope).get("token")
        if raw:
            return bool(await db(token_valid)(raw))
        user = self.scope.get("user")
        return bool(
            user is not None
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and same_origin(self.scope)
        )

    async def disconnect(self, code: int) -> None:
        if self.pump_task is not None:
            self.pump_task.cancel()
        if self.thread_id:
            await lane_hub(self.channel_layer).unsubscribe(self.thread_id, self)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass  # the stream is one-way; client messages are ignored

    # -- live messages (the worker's group_send, via the hub) -------------------

    async def lane_events(self, message: dict[str, Any]) -> None:
        self.feed(message)

    def feed(self, message: dict[str, Any]) -> None:
        """Queue a live message for the pump; never blocks, never grows unbounded."""
        if self.overflowed:
            return  # the pump pages the journal, which has this range too
        self.pending.append(message)
        self.pending_frames += len(message.get("frames") or ()) or 1
        if self.pending_frames > MAX_PENDING:
            self.pending.clear()
            self.pending_frames = 0
            self.overflowed = True
        self.wake.set()

    # -- the one task that sends frames ------------------------------------------

    async def pump(self) -> None:
        try:
            await self.replay(upto=None)
            while True:
                if self.overflowed:
                    self.overflowed = False
                    await self.replay(upto=None)
                elif self.pending:
                    message = self.pending.popleft()
                    self.pending_frames -= len(message.get("frames") or ()) or 1
                    await self.deliver(message)
                else:
                    self.wake.clear()
                    await self.wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lane stream %s failed", self.thread_id)
            await self.close(code=CLOSE_INTERNAL)

    async def deliver(self, message: dict[str, Any]) -> None:
        if message["last_seq"] <= self.last_sent:
            return
        frames = message.get("frames")
        if frames is None:  # a large batch travels as a seq range only
            await self.replay(upto=message["last_seq"])
            return
        texts = message.get("texts") or [None] * len(frames)
        batch: list[str] = []
        batch_last = self.last_sent
        for frame, text in zip(frames, texts, strict=True):
            seq = frame["seq"]
            if seq <= batch_last:
                continue
            if seq > batch_last + 1:  # the layer dropped something
                await self.send_frames(batch, batch_last)
                batch = []
                await self.replay(upto=seq - 1)
                batch_last = self.last_sent
            batch.append(text if text is not None else json.dumps(frame))
            batch_last = seq
        await self.send_frames(batch, batch_last)

    async def replay(self, *, upto: int | None) -> None:
        """Send journal rows after last_sent (up to `upto`, else to the end)."""
        while True:
            frames = await db(journal_frames)(
                self.thread_id, after=self.last_sent, limit=PAGE_SIZE, upto=upto
            )
            if frames:
                texts = [json.dumps(frame) for frame in frames]
                await self.send_frames(texts, frames[-1]["seq"])
            if len(frames) < PAGE_SIZE:
                break
        if upto is not None and upto > self.last_sent:
            # Rows below a published seq are committed; any still missing
            # were compacted away and will not appear later.
            self.last_sent = upto

    async def send_frames(self, texts: list[str], last_seq: int) -> None:
        """One websocket message for every frame ready now, one per line.

        Per-message costs (framing, the server's write, the client's read)
        dominate at high rates; a batch pays them once.
        """
        if texts:
            await self.send(text_data="\n".join(texts))
            self.last_sent = last_seq
