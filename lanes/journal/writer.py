"""The event journal: app-server messages become LaneEvent rows, in batches.

The worker is the only writer for the threads of its host, so it keeps the
next `seq` per thread in memory (loaded from the DB on first use); the unique
(thread_id, seq) constraint is the invariant that backs it. Lane state
follows the same messages in the same transaction (lanes.journal.lane_state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from lanes.appserver.protocol import TURN_COMPLETED
from lanes.journal.eventstore import EventRow, events_insert
from lanes.journal.indexing import index_messages
from lanes.journal.lane_state import (
    lane_apply_event,
    lane_save_journaled,
    lane_snapshot,
)
from lanes.models import Lane, LaneEvent


@dataclass
class JournalResult:
    frames: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rows: list[EventRow] = field(default_factory=list)
    # Lanes whose turn just completed successfully: their queues may move.
    drain_thread_ids: set[str] = field(default_factory=set)


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


# A message key (never journaled): write the message only while the journal
# has no turn/completed for its turn. For events the worker writes for a
# turn on codex's word, which the turn's own end may have overtaken.
IF_TURN_OPEN = "_if_turn_open"


def drop_settled(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` without IF_TURN_OPEN ones whose turn has ended; in a transaction."""
    guarded = [
        (thread_of(params), turn_of(params))
        for m in messages
        if m.get(IF_TURN_OPEN)
        for params in [m.get("params") or {}]
    ]
    if not guarded:
        return messages
    ended = set(
        LaneEvent.objects.filter(
            thread_id__in={thread for thread, _ in guarded},
            turn_id__in={turn for _, turn in guarded},
            method=TURN_COMPLETED,
        ).values_list("thread_id", "turn_id")
    )
    kept = []
    for message in messages:
        params = message.get("params") or {}
        key = (thread_of(params), turn_of(params))
        if message.get(IF_TURN_OPEN) and key in ended:
            continue
        if message.get("method") == TURN_COMPLETED:
            ended.add(key)
        kept.append(message)
    return kept


# Other processes journal dispatch's own events (lanes.journal.dispatch_events)
# at max(seq) + 1, so the counter can be behind; a conflict reloads it.
BATCH_ATTEMPTS = 5


def journal_write_batch(
    messages: list[dict[str, Any]], counter: SeqCounter
) -> JournalResult:
    """Persist one batch in one transaction and update lane state."""
    for attempt in range(BATCH_ATTEMPTS):
        try:
            return journal_write_batch_once(messages, counter)
        except IntegrityError:
            if attempt == BATCH_ATTEMPTS - 1:
                raise
            counter.forget()
        except DatabaseError:
            # Nothing was written (disk full, read-only): the seqs this batch
            # took are free again, or the next write would leave a hole.
            counter.forget()
            raise
    raise AssertionError("unreachable")


def journal_write_batch_once(
    messages: list[dict[str, Any]], counter: SeqCounter
) -> JournalResult:
    result = JournalResult()
    now = timezone.now()
    rows: list[EventRow] = []
    with transaction.atomic():
        messages = drop_settled(messages)
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
            # The worker's own dispatch/ events report changes already made;
            # lane state follows the app-server only.
            if lane is None or row.method.startswith("dispatch/"):
                continue
            if lane_apply_event(lane, row, now):
                # Only a finished turn moves the queue: the idle status change
                # arrives before turn/completed says whether the turn failed.
                if (
                    row.method == TURN_COMPLETED
                    and lane.status == Lane.Status.IDLE
                    and not lane.queue_held
                ):
                    result.drain_thread_ids.add(thread_id)
        events_insert(rows)
        # Same transaction: an item is searchable exactly when its event is.
        index_messages(messages, now=now)
        for thread_id, lane in lanes.items():
            lane_save_journaled(lane, before[thread_id], now)
    result.rows = rows
    result.frames = [(row.thread_id, row.as_frame()) for row in rows]
    return result
