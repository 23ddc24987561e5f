"""Dispatch's own events in the journal: seqs shared with the worker, after commit."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from lanes.journal.bus import JOURNAL_GROUP
from lanes.journal.dispatch_events import (
    MESSAGE_QUEUED,
    TRIGGER_FIRED,
    dispatch_event_message,
    dispatch_event_record,
)
from lanes.journal.eventstore import EventRow
from lanes.journal.reader import lane_watch
from lanes.journal.writer import SeqCounter, journal_write_batch
from lanes.models import Lane, LaneEvent
from lanes.models.index import LaneItem
from lanes.services import lane_register
from lanes.signals import lane_events_journaled

pytestmark = pytest.mark.django_db(transaction=True)

THREAD = "019a0000-0000-7000-8000-0000000000d1"


@pytest.fixture
def lane() -> Lane:
    return lane_register(
        thread_id=THREAD, title="events", source="own", cwd="/srv", host="testhost"
    )


def note(method: str, **params: Any) -> dict[str, Any]:
    return {"method": method, "params": {"threadId": THREAD, **params}}


def journal() -> list[tuple[int, str]]:
    return list(
        LaneEvent.objects.filter(thread_id=THREAD)
        .order_by("seq")
        .values_list("seq", "method")
    )


def test_it_shares_contiguous_seqs_with_the_worker_counter(lane: Lane) -> None:
    counter = SeqCounter()
    journal_write_batch([note("turn/started", turn={"id": "t1"})], counter)
    # Another process journals while the worker's counter still says 2.
    dispatch_event_record(lane=lane, method=MESSAGE_QUEUED, params={"messageId": 7})
    dispatch_event_record(lane=lane, method=TRIGGER_FIRED, params={"triggerId": "9"})
    item = {"type": "agentMessage", "id": "m1", "text": "done"}
    result = journal_write_batch(
        [
            note("item/completed", turnId="t1", item=item),
            note("turn/completed", turn={"id": "t1", "status": "completed"}),
        ],
        counter,
    )
    assert [row.seq for row in result.rows] == [4, 5]
    assert journal() == [
        (1, "turn/started"),
        (2, "dispatch/message/queued"),
        (3, "dispatch/trigger/fired"),
        (4, "item/completed"),
        (5, "turn/completed"),
    ]
    queued = LaneEvent.objects.get(thread_id=THREAD, seq=2)
    assert queued.params == {"messageId": 7, "threadId": THREAD}
    # The index and the lane state took the retried batch exactly once.
    assert LaneItem.objects.filter(thread_id=THREAD).count() == 1
    lane.refresh_from_db()
    assert lane.latest_turn_status == "completed"


def test_it_writes_only_after_the_change_commits(lane: Lane) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch_event_record(lane=lane, method=MESSAGE_QUEUED, params={})
        raise RuntimeError("the change failed")
    assert journal() == []
    with transaction.atomic():
        dispatch_event_record(lane=lane, method=MESSAGE_QUEUED, params={})
        assert journal() == []
    assert journal() == [(1, "dispatch/message/queued")]


def test_it_publishes_like_the_worker_and_announces_the_rows(lane: Lane) -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(JOURNAL_GROUP, channel)
    announced: list[EventRow] = []

    def receiver(sender: Any, rows: list[EventRow], **kwargs: Any) -> None:
        announced.extend(rows)

    lane_events_journaled.connect(receiver, weak=False)
    try:
        dispatch_event_record(lane=lane, method=TRIGGER_FIRED, params={"n": 1})
    finally:
        lane_events_journaled.disconnect(receiver)
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "lanes.events"
    (part,) = message["batches"]
    assert (part["thread_id"], part["first_seq"], part["last_seq"]) == (THREAD, 1, 1)
    assert '"method": "dispatch/trigger/fired"' in part["texts"][0]
    assert [(r.seq, r.method) for r in announced] == [(1, "dispatch/trigger/fired")]


def test_it_keeps_the_readers_working(lane: Lane) -> None:
    counter = SeqCounter()
    item = {"type": "agentMessage", "id": "m2", "text": "hello"}
    # The worker journals its own events through its inbox, in one batch.
    journal_write_batch(
        [
            dispatch_event_message(
                thread_id=THREAD, method="dispatch/approval/pending", params={}
            ),
            note("item/completed", turnId="t2", item=item),
        ],
        counter,
    )
    watched = lane_watch(lane=lane, limit=10, timeout=0, after=0)
    assert [e["method"] for e in watched["events"]] == [
        "dispatch/approval/pending",
        "item/completed",
    ]
    assert list(LaneItem.objects.values_list("item_id", flat=True)) == ["m2"]


def test_it_refuses_methods_outside_its_prefix(lane: Lane) -> None:
    with pytest.raises(ValueError, match="dispatch/"):
        dispatch_event_record(lane=lane, method="turn/started", params={})
