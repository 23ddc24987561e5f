"""Dispatch's own events in a lane's journal: `dispatch/...` methods.

Approvals held and answered, messages queued and delivered, renames,
archives, goals, trigger firings: changes made by dispatch rather than
reported by the app-server. They are LaneEvent rows like any other, with
the next `seq` of the lane's stream, so `/ws/events`, lane sockets, `watch`
and `history` show them in order among the app-server's events.

Two kinds of writer share the journal now: the worker (app-server events,
and its own dispatch events put on its inbox, numbered by its in-memory
SeqCounter in arrival order) and any other process that calls
`dispatch_event_record` (web, celery). Writers here take
`max(seq) + 1` inside the insert's transaction and retry on the unique
(thread_id, seq) conflict; the worker's counter does the same on conflict
(`journal_write_batch` reloads and retries). So seqs stay unique and
contiguous, and each row commits in seq order: a writer that lost the race
never leaves a gap, it takes the next number. Writing through the worker
over the channel layer was the alternative; it loses events whenever the
worker is down or the layer is full, and these events record changes that
already happened.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from dispatchsite.core.origin import Origin
from lanes.journal.bus import journal_announce_sync
from lanes.journal.eventstore import EventRow, events_insert
from lanes.models import Lane, LaneEvent
from lanes.signals import lane_events_journaled

log = logging.getLogger("dispatch.journal")

PREFIX = "dispatch/"
# Conflicts only happen when another writer commits the same seq between
# our read and our insert; a handful of tries is plenty.
ATTEMPTS = 8

APPROVAL_PENDING = "dispatch/approval/pending"
APPROVAL_ANSWERED = "dispatch/approval/answered"
MESSAGE_QUEUED = "dispatch/message/queued"
MESSAGE_DELIVERED = "dispatch/message/delivered"
LANE_RENAMED = "dispatch/lane/renamed"
LANE_ARCHIVED = "dispatch/lane/archived"
LANE_RESTORED = "dispatch/lane/restored"
GOAL_SET = "dispatch/goal/set"
GOAL_CLEARED = "dispatch/goal/cleared"
TRIGGER_FIRED = "dispatch/trigger/fired"
TRIGGER_SKIPPED = "dispatch/trigger/skipped"
TRIGGER_FAILED = "dispatch/trigger/failed"
TRIGGER_PAUSED = "dispatch/trigger/paused"


def is_dispatch_event(method: str) -> bool:
    return method.startswith(PREFIX)


def dispatch_event_record(
    *,
    lane: Lane | str,
    method: str,
    params: dict[str, Any],
) -> None:
    """Journal and publish one dispatch event once the caller's change commits.

    `lane` is a Lane or its thread id; `method` must start with `dispatch/`;
    `params` must be JSON-serialisable (the lane's `threadId` is added).
    Inside a transaction nothing happens until it commits (and nothing at
    all if it rolls back); outside one, the event is written at once. A
    failure to journal is logged, never raised: the change it reports has
    already been made. (The worker journals its own through its inbox:
    `dispatch_event_message`.)
    """
    if not is_dispatch_event(method):
        raise ValueError(f"dispatch event methods start with {PREFIX!r}: {method!r}")
    thread_id = lane if isinstance(lane, str) else lane.thread_id
    payload = {**params, "threadId": thread_id}
    at = timezone.now()

    def write() -> None:
        try:
            row = dispatch_event_write(
                thread_id=thread_id, method=method, params=payload, at=at
            )
        except Exception:
            log.exception("could not journal %s for %s", method, thread_id)
            return
        dispatch_event_publish(row)

    transaction.on_commit(write)


def origin_label(origin: Origin) -> str:
    """Who acted, as events and history rows keep it: "cli", "rest token:ci"."""
    return " ".join(part for part in (origin.surface, origin.actor) if part)


def lane_event(lane: Lane, method: str, origin: Origin, **params: Any) -> None:
    """`dispatch_event_record` for a service: params plus who acted (`by`)."""
    if origin.trigger_id:
        params["triggerId"] = origin.trigger_id
    dispatch_event_record(
        lane=lane, method=method, params={**params, "by": origin_label(origin)}
    )


def dispatch_event_message(
    *, thread_id: str, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    """A dispatch event as a message for the worker's journal inbox."""
    if not is_dispatch_event(method):
        raise ValueError(f"dispatch event methods start with {PREFIX!r}: {method!r}")
    return {"method": method, "params": {**params, "threadId": thread_id}}


def next_seq(thread_id: str) -> int:
    last = LaneEvent.objects.filter(thread_id=thread_id).aggregate(m=Max("seq"))["m"]
    return int(last or 0) + 1


def dispatch_event_write(
    *,
    thread_id: str,
    method: str,
    params: dict[str, Any],
    at: datetime | None = None,
) -> EventRow:
    """INSERT the event at the lane's next seq, retrying when another writer won."""
    for attempt in range(ATTEMPTS):
        row = EventRow(
            thread_id=thread_id,
            seq=0,
            method=method,
            params=params,
            turn_id=str(params.get("turnId") or ""),
            item_id="",
            request_id=None,
            received_at=at or timezone.now(),
        )
        try:
            with transaction.atomic():
                row.seq = next_seq(thread_id)
                events_insert([row])
            return row
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def dispatch_event_publish(row: EventRow) -> None:
    """Announce the committed row the way the worker announces its batches."""
    frame = row.as_frame()
    part = {
        "thread_id": row.thread_id,
        "first_seq": row.seq,
        "last_seq": row.seq,
        # As lanes.journal.reader.frame_text encodes it (not imported: the
        # reader presents lanes, and services may not import presenters).
        "texts": [json.dumps(frame, default=str)],
    }
    try:
        journal_announce_sync([part])
    except Exception as exc:  # watchers refill gaps from the journal
        log.warning("publishing %s failed: %s", row.method, exc)
    for receiver, outcome in lane_events_journaled.send_robust(
        sender=dispatch_event_record, rows=[row]
    ):
        if isinstance(outcome, Exception):
            log.error("%r failed on a dispatch event: %r", receiver, outcome)
