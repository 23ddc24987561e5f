"""Reading a lane's journal: the bounded `watch` op and the websocket replay.

The journal (LaneEvent rows, contiguous `seq` per thread) is the source of
truth; the journal bus only says "something new, probably these frames".
So every reader here can start from any seq and never miss a row, whatever
the bus dropped.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.db.models import Max

from lanes.models import Lane, LaneEvent
from lanes.presenters import lane_identity

WATCH_LIMIT_MAX = 500
WATCH_TIMEOUT_MAX = 25.0
# One indexed range query per tick; 100 ms keeps a watch responsive without
# making a 25 s call cost more than a few hundred cheap SELECTs.
POLL_SECONDS = 0.1
# Lanes one websocket stream (`/ws/events`, `watch --follow --also`) may follow.
STREAM_MAX_LANES = 200


def journal_last_seq(thread_id: str) -> int:
    """The highest journaled seq of a thread, 0 when it has none."""
    last = LaneEvent.objects.filter(thread_id=thread_id).aggregate(m=Max("seq"))["m"]
    return int(last or 0)


def journal_heads(thread_ids: list[str]) -> dict[str, tuple[int, float]]:
    """Each thread's last journaled seq and when its row was read (epoch
    seconds; 0, 0.0 for none): one indexed lookup each."""
    heads = {}
    for thread_id in thread_ids:
        row = (
            LaneEvent.objects.filter(thread_id=thread_id)
            .order_by("-seq")
            .values_list("seq", "received_at")
            .first()
        )
        heads[thread_id] = (int(row[0]), row[1].timestamp()) if row else (0, 0.0)
    return heads


def journal_page(
    thread_id: str, *, after: int, limit: int, upto: int | None = None
) -> list[LaneEvent]:
    """Up to `limit` events with after < seq (<= upto), in seq order."""
    rows = LaneEvent.objects.filter(thread_id=thread_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    return list(rows.order_by("seq")[:limit])


def frame_text(frame: dict[str, Any]) -> str:
    """A frame encoded once, as it goes inside every websocket message."""
    return json.dumps(frame, default=str)


def events_document(texts: list[str]) -> str:
    """One websocket message: `{"events": [...]}` around encoded frames.

    Joining the texts keeps the message one JSON document (what a client's
    `JSON.parse(message)` expects) without decoding any frame again.
    """
    return '{"events":[' + ",".join(texts) + "]}"


def journal_frame_texts(
    thread_id: str, *, after: int, limit: int, upto: int | None = None
) -> list[tuple[int, str]]:
    """`journal_page` as (seq, websocket frame text) pairs."""
    return [
        (e.seq, frame_text(e.as_frame()))
        for e in journal_page(thread_id, after=after, limit=limit, upto=upto)
    ]


def watch_event(event: LaneEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "method": event.method,
        "params": event.params,
        "request_id": event.request_id,
    }


def lane_watch(
    *, lane: Lane, limit: int, timeout: float, after: int | None = None
) -> dict[str, Any]:
    """A bounded sample of a lane's events, read by polling the journal.

    Without `after` this samples what arrives during the call (after the
    current last seq) until `limit` events or `timeout` seconds, like the
    tool our users come from. With `after` it pages the journal: events
    after that seq come back at once, up to `limit`; only when there are
    none yet does it wait (up to `timeout`) for the first ones. `last_seq`
    is the cursor to pass as `after` next time. `timed_out` is true when the
    call ended because its timeout passed.
    """
    deadline = time.monotonic() + timeout
    sampling = after is None
    cursor = journal_last_seq(lane.thread_id) if after is None else after
    events: list[LaneEvent] = []
    timed_out = False
    while True:
        if sampling and timeout <= 0:
            # Nothing can arrive during a zero-length call.
            timed_out = True
            break
        page = journal_page(lane.thread_id, after=cursor, limit=limit - len(events))
        if page:
            events.extend(page)
            cursor = page[-1].seq
        if len(events) >= limit or (events and not sampling):
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        time.sleep(min(POLL_SECONDS, remaining))
    lane.refresh_from_db()
    return {
        **lane_identity(lane),
        "events": [watch_event(e) for e in events],
        "timed_out": timed_out,
        "last_seq": cursor,
    }
