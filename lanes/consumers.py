"""Websocket: a lane's events, replayed from the journal, then streamed live.

    ws://HOST/ws/lanes/<selector>/events?after=<seq>[&token=<token>]

Every frame is one journal row (`LaneEvent.as_frame`), sent exactly once and
in seq order. `after` defaults to 0 (the whole journal); `after=latest`
starts at the current end. Auth: `Authorization: Bearer <token>`, `?token=`,
or the session of a logged-in staff user on a same-origin page (the admin
live page). Close codes: 4400 bad request, 4401 auth, 4404 unknown lane.

The channel layer is at-most-once and drops silently past capacity, so it is
only a fast path: the consumer joins the lane's group *before* replaying, so
nothing falls between replay and live, and whenever a live message does not
continue from the last frame sent (a drop, or `frames` left out because the
batch was large) it reads the missing range from the journal. Live messages
wait in a bounded buffer while the socket is busy; past MAX_PENDING frames
the buffer is dropped and the consumer pages the journal instead, which is
lossless because every published row is committed first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dispatchsite.errors import DispatchError
from lanes.selectors import find_lane
from lanes.watch import journal_frames, journal_last_seq

log = logging.getLogger("dispatch.websocket")

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL = 1011
# Journal rows per query when replaying or refilling.
PAGE_SIZE = 500
# Live frames buffered for a slow socket before switching to journal paging.
MAX_PENDING = 2000


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


class LaneEventsConsumer(AsyncJsonWebsocketConsumer):
    thread_id = ""
    group = ""
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
        """Join the lane's group; a close code when the stream cannot open."""
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
        self.group = f"lane.{thread_id}"
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.pending_frames = 0
        self.overflowed = False
        self.wake = asyncio.Event()
        await self.channel_layer.group_add(self.group, self.channel_name)
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
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass  # the stream is one-way; client messages are ignored

    # -- live messages (from the worker's group_send) ---------------------------

    async def lane_events(self, message: dict[str, Any]) -> None:
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
        for frame in frames:
            seq = frame["seq"]
            if seq <= self.last_sent:
                continue
            if seq > self.last_sent + 1:  # the layer dropped something
                await self.replay(upto=seq - 1)
            await self.emit(frame)

    async def replay(self, *, upto: int | None) -> None:
        """Send journal rows after last_sent (up to `upto`, else to the end)."""
        while True:
            frames = await db(journal_frames)(
                self.thread_id, after=self.last_sent, limit=PAGE_SIZE, upto=upto
            )
            for frame in frames:
                await self.emit(frame)
            if len(frames) < PAGE_SIZE:
                break
        if upto is not None and upto > self.last_sent:
            # Rows below a published seq are committed; any still missing
            # were compacted away and will not appear later.
            self.last_sent = upto

    async def emit(self, frame: dict[str, Any]) -> None:
        await self.send_json(frame)
        self.last_sent = frame["seq"]

