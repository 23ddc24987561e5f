"""Websockets: lanes' events, replayed from the journal, then streamed live.

    ws://HOST/ws/lanes/<selector>/events?after=<seq>
    ws://HOST/ws/events?lane=<selector>&lane=<selector>...&after=<seq>...

The first follows one lane; the second up to STREAM_MAX_LANES over one
socket, so a dashboard or an agent supervising many lanes pays one
connection, and one websocket message per journal batch, however many of
its lanes the batch touched. `after` defaults to 0 (the whole journal);
`after=latest` starts at the current end. On the many-lane socket one
`after` applies to every lane, or give one per `lane`, in the same order
(a lane named twice keeps its first).

Every frame is one journal row (`LaneEvent.as_frame`, which names its
`thread_id`), sent exactly once and in seq order per lane. Every websocket
message is one JSON document, `{"events": [<frame>, ...]}` with one or more
frames (frames ready together go out together), whether live, replayed or
refilled from the journal. Auth: `Authorization: Bearer <token>`,
`?token=`, or the session of a logged-in staff user on a same-origin page
(the admin live page). A lane-scoped token (`token create --lane`) may only
follow its own lanes: a socket naming any other lane, on either path, is
refused with 4403 rather than silently narrowed, so a client never mistakes
a partial stream for the whole one. Close codes: 4400 bad request, 4401
auth (also a token revoked or expired while the socket is open), 4403 a
lane outside the token's scope, 4404 unknown lane.

The journal bus (Redis pub/sub) is at-most-once, so it is only a fast path:
the socket subscribes (lanes.realtime.hub) *before* replaying, so nothing
falls between replay and live, and whenever a live part does not
continue from the last frame sent on its lane (a drop, or a batch too large
to carry its frames) it reads the missing range from the journal. Live parts
wait in a bounded buffer while the socket is busy and go out together; past
MAX_PENDING frames the buffer is dropped and the socket pages the journal
instead, which is lossless because every published row is committed first.
What daphne has accepted for a client but not yet written is bounded by its
pings (DISPATCH_WS_PING_*): a client that stops reading stops answering
them, and daphne drops it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from dispatchsite.core.errors import DispatchError
from lanes.journal.reader import (
    STREAM_MAX_LANES,
    events_document,
    journal_frame_texts,
    journal_last_seq,
)
from lanes.realtime.hub import db, lane_hub
from lanes.selectors import find_lane
from lanes.tokens import TokenScope, bearer_from_headers, token_user

log = logging.getLogger("dispatch.websocket")

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL = 1011
# An alias naming no channel layer: channels then gives a socket no channel
# of its own. Sockets are fed by the process's hub (lanes.realtime.hub); a
# channel each would cost a Redis receive per socket, and channels ends the
# socket with a traceback when that receive fails (a Redis restart).
NO_OWN_CHANNEL = "dispatch-sockets-have-no-channel"
# Sent beside each code, so a client can say why without a table of codes.
CLOSE_REASONS = {
    CLOSE_BAD_REQUEST: "bad request",
    CLOSE_UNAUTHORIZED: "unauthorized: no valid token or staff session",
    CLOSE_FORBIDDEN: "a lane is outside this token's scope",
    CLOSE_NOT_FOUND: "unknown lane",
    CLOSE_INTERNAL: "internal error; see the web log",
}
# Journal rows per query when replaying or refilling.
PAGE_SIZE = 500
# Live frames buffered for a slow socket before switching to journal paging.
MAX_PENDING = 2000


class BadRequest(Exception):
    pass


def query_lists(scope: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


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


def lookup_lanes(selectors: list[str]) -> list[tuple[str, int]] | None:
    """(thread id, last journaled seq) per read selector; None if one is unknown."""
    found = []
    for selector in selectors:
        lane = find_lane(selector, fuzzy=True)
        if lane is None:
            return None
        found.append((lane.thread_id, journal_last_seq(lane.thread_id)))
    return found


def token_valid(raw: str) -> bool:
    return token_user(raw) is not None


def raw_token_scope(raw: str) -> TokenScope | None:
    """The scope of a live token, None when it is unknown, revoked or expired."""
    token = token_user(raw)
    return TokenScope.of(token) if token is not None else None


def header_bearer(scope: dict[str, Any]) -> str | None:
    return bearer_from_headers(scope.get("headers", []))


def start_cursor(after: str, last_seq: int) -> int:
    if after == "latest":
        return last_seq
    if after.isdigit():
        return int(after)
    raise BadRequest(f"after must be a seq or 'latest', not {after!r}")


class JournalStreamConsumer(AsyncWebsocketConsumer):
    """Streams the journal of one or more lanes over one socket."""

    channel_layer_alias = NO_OWN_CHANNEL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pump_task: asyncio.Task[None] | None = None
        self.token_task: asyncio.Task[None] | None = None
        self.token_raw = ""
        # None for a staff session (every lane).
        self.token_scope: TokenScope | None = None
        # thread id -> the last seq sent on that lane
        self.cursors: dict[str, int] = {}

    def requested(self) -> list[tuple[str, str]]:
        """(selector, after) for each lane the client asked for."""
        raise NotImplementedError

    async def connect(self) -> None:
        code = await self.open_stream()
        # Accept even to refuse: a close before accept becomes an HTTP 403
        # and the client would never see the 44xx code. On success the
        # handshake completes only once the hub has it, so a client that is
        # connected is also subscribed.
        await self.accept()
        if code is not None:
            await self.close(code=code, reason=CLOSE_REASONS[code])
            return
        self.pump_task = asyncio.create_task(self.pump())
        if self.token_raw:
            self.token_task = asyncio.create_task(self.watch_token())

    async def open_stream(self) -> int | None:
        """Subscribe to the lanes; a close code when the stream cannot open."""
        if not await self.authorized():
            return CLOSE_UNAUTHORIZED
        try:
            wanted = self.requested()
            found = await db(lookup_lanes)([selector for selector, _ in wanted])
            scope = self.token_scope
            if scope is not None and scope.lane_ids is not None:
                # Unknown and foreign lanes look alike to a lane-scoped token.
                if found is None or not all(
                    scope.allows_lane(thread_id) for thread_id, _ in found
                ):
                    return CLOSE_FORBIDDEN
            if found is None:
                return CLOSE_NOT_FOUND
            cursors: dict[str, int] = {}
            for (_selector, after), (thread_id, last_seq) in zip(
                wanted, found, strict=True
            ):
                cursors.setdefault(thread_id, start_cursor(after, last_seq))
            if len(cursors) > STREAM_MAX_LANES:
                raise BadRequest(f"at most {STREAM_MAX_LANES} lanes per socket")
        except (BadRequest, DispatchError):  # e.g. an ambiguous selector
            return CLOSE_BAD_REQUEST
        self.begin(cursors)
        await lane_hub(get_channel_layer()).subscribe(list(cursors), self)
        return None

    def begin(self, cursors: dict[str, int]) -> None:
        self.cursors = cursors
        self.pending: collections.deque[list[dict[str, Any]]] = collections.deque()
        self.pending_frames = 0
        self.overflowed = False
        self.wake = asyncio.Event()

    async def authorized(self) -> bool:
        raw = (
            header_bearer(self.scope)
            or (query_lists(self.scope).get("token") or [""])[-1]
        )
        if raw:
            self.token_raw = raw
            self.token_scope = await db(raw_token_scope)(raw)
            return self.token_scope is not None
        user = self.scope.get("user")
        return bool(
            user is not None
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and same_origin(self.scope)
        )

    async def watch_token(self) -> None:
        """A token revoked (or expired) while its socket is open closes it."""
        while True:
            await asyncio.sleep(settings.DISPATCH_WS_TOKEN_RECHECK_SECONDS)
            if not await db(token_valid)(self.token_raw):
                await self.close(
                    code=CLOSE_UNAUTHORIZED, reason="token revoked or expired"
                )
                return

    async def disconnect(self, code: int) -> None:
        for task in (self.pump_task, self.token_task):
            if task is not None:
                task.cancel()
        if self.cursors:
            await lane_hub(get_channel_layer()).unsubscribe(list(self.cursors), self)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        pass  # the stream is one-way; client messages are ignored

    # -- live parts (from the hub) ---------------------------------------------

    def feed(self, parts: list[dict[str, Any]]) -> None:
        """Queue live parts for the pump; never blocks, never grows unbounded."""
        if self.overflowed:
            return  # the pump pages the journal, which has these rows too
        self.pending.append(parts)
        self.pending_frames += sum(len(part.get("texts") or "_") for part in parts)
        if self.pending_frames > MAX_PENDING:
            self.pending.clear()
            self.pending_frames = 0
            self.overflowed = True
        self.wake.set()

    # -- the one task that sends frames ----------------------------------------

    async def pump(self) -> None:
        try:
            await self.replay_all()
            while True:
                if self.overflowed:
                    self.overflowed = False
                    await self.replay_all()
                elif self.pending:
                    parts = [part for batch in self.pending for part in batch]
                    self.pending.clear()
                    self.pending_frames = 0
                    await self.deliver(parts)
                else:
                    self.wake.clear()
                    await self.wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lane stream %s failed", list(self.cursors))
            await self.close(code=CLOSE_INTERNAL, reason=CLOSE_REASONS[CLOSE_INTERNAL])

    async def deliver(self, parts: list[dict[str, Any]]) -> None:
        """Every frame of `parts` not sent yet, in one message where possible."""
        texts: list[str] = []
        advanced: dict[str, int] = {}
        for part in parts:
            thread_id = part["thread_id"]
            last = advanced.get(thread_id, self.cursors[thread_id])
            if part["last_seq"] <= last:
                continue
            carried = part.get("texts")
            if carried is None or part["first_seq"] > last + 1:
                # Not carried, or the layer dropped something before it.
                await self.send_texts(texts, advanced)
                texts, advanced = [], {}
                await self.replay(thread_id, upto=part["last_seq"])
                continue
            texts.extend(carried[last + 1 - part["first_seq"] :])
            advanced[thread_id] = part["last_seq"]
        await self.send_texts(texts, advanced)

    async def replay_all(self) -> None:
        for thread_id in list(self.cursors):
            await self.replay(thread_id, upto=None)

    async def replay(self, thread_id: str, *, upto: int | None) -> None:
        """Send a lane's rows after its cursor (up to `upto`, else to the end)."""
        while True:
            page = await db(journal_frame_texts)(
                thread_id, after=self.cursors[thread_id], limit=PAGE_SIZE, upto=upto
            )
            if page:
                await self.send_texts(
                    [text for _seq, text in page], {thread_id: page[-1][0]}
                )
            if len(page) < PAGE_SIZE:
                break
        if upto is not None and upto > self.cursors[thread_id]:
            # Rows below a published seq are committed; any still missing
            # were compacted away and will not appear later.
            self.cursors[thread_id] = upto

    async def send_texts(self, texts: list[str], advanced: dict[str, int]) -> None:
        """One websocket message, one JSON document, for every frame ready now.

        Per-message costs (framing, the server's write, the client's read)
        dominate at high rates; a batch pays them once. The frames were
        encoded once by the worker (or the journal reader): they are joined
        into the envelope, never decoded and encoded again per socket.
        """
        if texts:
            await self.send(text_data=events_document(texts))
            self.cursors.update(advanced)


class LaneEventsConsumer(JournalStreamConsumer):
    """`/ws/lanes/<selector>/events?after=<seq>`: one lane."""

    def requested(self) -> list[tuple[str, str]]:
        after = query_lists(self.scope).get("after") or ["0"]
        return [(self.scope["url_route"]["kwargs"]["selector"], after[-1])]


class LanesEventsConsumer(JournalStreamConsumer):
    """`/ws/events?lane=<selector>&lane=...&after=<seq>...`: many lanes."""

    def requested(self) -> list[tuple[str, str]]:
        query = query_lists(self.scope)
        selectors = query.get("lane") or []
        after = query.get("after") or ["0"]
        if not selectors:
            raise BadRequest("name at least one lane=<selector>")
        if len(selectors) > 2 * STREAM_MAX_LANES:  # resuming names some twice
            raise BadRequest(f"at most {STREAM_MAX_LANES} lanes per socket")
        if len(after) == 1:
            after = after * len(selectors)
        if len(after) != len(selectors):
            raise BadRequest("give one after, or one per lane")
        return list(zip(selectors, after, strict=True))
