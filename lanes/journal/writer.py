"""The event journal: app-server messages become LaneEvent rows, in batches.

The worker is the only writer for the threads of its host, so it keeps the
next `seq` per thread in memory (loaded from the DB on first use); the unique
(thread_id, seq) constraint is the invariant that backs it. Lane state
follows the same messages in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from lanes.history.indexing import index_messages
from lanes.journal.eventstore import EventRow, events_insert
from lanes.models import Lane, LaneEvent

APPROVAL_METHODS = {
    "item/commandExecution/requestApproval",
    "item/fileChange/requestApproval",
    "item/permissions/requestApproval",
    "item/tool/requestUserInput",
    "mcpServer/elicitation/request",
    "execCommandApproval",
    "applyPatchApproval",
}


@dataclass
class JournalResult:
    frames: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Lanes whose turn just completed successfully: their queues may move.
    drain_thread_ids: set[str] = field(default_factory=set)


# Every committed batch is announced on this channel-layer group; web
# processes subscribe once and fan out to their websockets in memory.
JOURNAL_GROUP = "lanes.journal.writer"

# The only lane columns the journal writes: a rename or archive made by a
# service in between must never be overwritten by a stale copy of the row.
LANE_STATE_FIELDS = [
    "status",
    "active_turn_id",
    "latest_turn_id",
    "latest_turn_status",
    "latest_error",
    "latest_error_at",
    "queue_held",
    "goal",
    "last_event_at",
    "updated_at",
]


# A lane row is rewritten when its state changes, but for last_event_at
# alone only every LAST_EVENT_RESOLUTION: under a stream of deltas the
# per-batch UPDATEs were a third of the worker's time.
LAST_EVENT_RESOLUTION = timedelta(seconds=1)
TRACKED_FIELDS = [
    f for f in LANE_STATE_FIELDS if f not in ("last_event_at", "updated_at")
]


def lane_snapshot(lane: Lane) -> tuple[tuple[Any, ...], datetime | None]:
    return tuple(getattr(lane, f) for f in TRACKED_FIELDS), lane.last_event_at


class SeqCounter:
    def __init__(self) -> None:
        self.next_seq: dict[str, int] = {}

    def take(self, thread_id: str) -> int:
        if thread_id not in self.next_seq:
            last = LaneEvent.objects.filter(thread_id=thread_id).aggregate(m=Max("seq"))
            self.next_seq[thread_id] = (last["m"] or 0) + 1
        seq = self.next_seq[thread_id]
        self.next_seq[thread_id] = seq + 1
        return seq

    def forget(self) -> None:
        self.next_seq.clear()


def thread_of(params: dict[str, Any]) -> str:
    thread_id = params.get("threadId")
    if not thread_id and isinstance(params.get("thread"), dict):
        thread_id = params["thread"].get("id")
    return thread_id or ""


def turn_of(params: dict[str, Any]) -> str:
    if params.get("turnId"):
        return str(params["turnId"])
    turn = params.get("turn")
    return str(turn.get("id", "")) if isinstance(turn, dict) else ""


def item_of(params: dict[str, Any]) -> str:
    if params.get("itemId"):
        return str(params["itemId"])
    item = params.get("item")
    return str(item.get("id", "")) if isinstance(item, dict) else ""


def journal_write_batch(
    messages: list[dict[str, Any]], counter: SeqCounter
) -> JournalResult:
    """Persist one batch in one transaction and update lane state."""
    result = JournalResult()
    now = timezone.now()
    rows: list[EventRow] = []
    with transaction.atomic():
        lanes = {
            lane.thread_id: lane
            for lane in Lane.objects.filter(
                thread_id__in={thread_of(m.get("params") or {}) for m in messages}
            )
        }
        before = {thread_id: lane_snapshot(lane) for thread_id, lane in lanes.items()}
        for message in messages:
            params = message.get("params") or {}
            thread_id = thread_of(params)
            if not thread_id:
                continue
            row = EventRow(
                thread_id=thread_id,
                seq=counter.take(thread_id),
                method=message.get("method", ""),
                params=params,
                turn_id=turn_of(params),
                item_id=item_of(params)[:128],
                request_id=message.get("id"),
                received_at=message.get("_received_at") or now,
            )
            rows.append(row)
            lane = lanes.get(thread_id)
            if lane is not None and apply_event(lane, row, now):
                # Only a finished turn moves the queue: the idle status change
                # arrives before turn/completed says whether the turn failed.
                if (
                    row.method == "turn/completed"
                    and lane.status == Lane.Status.IDLE
                    and not lane.queue_held
                ):
                    result.drain_thread_ids.add(thread_id)
        events_insert(rows)
        # Same transaction: an item is searchable exactly when its event is.
        index_messages(messages, now=now)
        for thread_id, lane in lanes.items():
            state, last_event_at = before[thread_id]
            if (
                lane_snapshot(lane)[0] != state
                or last_event_at is None
                or now - last_event_at >= LAST_EVENT_RESOLUTION
            ):
                lane.save(update_fields=LANE_STATE_FIELDS)
    result.frames = [(row.thread_id, row.as_frame()) for row in rows]
    return result


def apply_event(lane: Lane, event: LaneEvent | EventRow, now: datetime) -> bool:
    """Follow the app-server's view of the lane; True when the lane changed."""
    params = event.params
    method = event.method
    lane.last_event_at = now
    if method == "turn/started":
        turn_id = event.turn_id
        if lane.status != Lane.Status.ARCHIVED:
            lane.status = Lane.Status.BUSY
        lane.active_turn_id = turn_id
        if lane.latest_turn_id != turn_id:
            lane.latest_turn_id = turn_id
            lane.latest_turn_status = "started"
            lane.latest_error = ""
            lane.latest_error_at = None
    elif method == "turn/completed":
        turn = params.get("turn") or {}
        status = turn.get("status") or "completed"
        if lane.active_turn_id in ("", event.turn_id):
            lane.active_turn_id = ""
        lane.latest_turn_id = event.turn_id or lane.latest_turn_id
        lane.latest_turn_status = status
        error = turn.get("error") or {}
        if status == "failed":
            lane.latest_error = (
                (error.get("message") if isinstance(error, dict) else str(error))
                or lane.latest_error
                or "turn failed"
            )
            lane.latest_error_at = now
        if lane.status != Lane.Status.ARCHIVED:
            lane.status = Lane.Status.ERROR if status == "failed" else Lane.Status.IDLE
        lane.queue_held = status != "completed"
    elif method == "thread/status/changed":
        status = params.get("status") or {}
        kind = status.get("type")
        flags = status.get("activeFlags") or []
        if lane.status == Lane.Status.ARCHIVED:
            pass
        elif kind == "active":
            lane.status = (
                Lane.Status.WAITING_APPROVAL
                if "waitingOnApproval" in flags
                else Lane.Status.BUSY
            )
        elif kind == "idle" and lane.status in (
            Lane.Status.BUSY,
            Lane.Status.WAITING_APPROVAL,
            Lane.Status.UNKNOWN,
        ):
            lane.status = Lane.Status.IDLE
        elif kind == "systemError":
            lane.status = Lane.Status.ERROR
    elif method == "error":
        error = params.get("error") or {}
        if not params.get("willRetry"):
            lane.latest_error = (
                error.get("message", "") if isinstance(error, dict) else str(error)
            )
            lane.latest_error_at = now
    elif method == "thread/archived":
        lane.status = Lane.Status.ARCHIVED
    elif method == "thread/unarchived":
        lane.status = Lane.Status.IDLE
    elif method == "thread/goal/updated":
        lane.goal = params.get("goal")
    elif method == "thread/goal/cleared":
        lane.goal = None
    elif method in APPROVAL_METHODS:
        if lane.status != Lane.Status.ARCHIVED:
            lane.status = Lane.Status.WAITING_APPROVAL
    return True
