"""Closing turns the app-server took with it: which, and with what status."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lanes.journal.writer import SeqCounter, journal_write_batch
from lanes.models import Lane, LaneTurn
from lanes.services import lane_register
from lanes.worker.recovery import lost_turn_events, lost_turns

pytestmark = pytest.mark.django_db
HOST = "testhost"


class Codex:
    """thread/turns/list answers by thread id."""

    def __init__(self, turns: dict[str, list[dict[str, Any]]]) -> None:
        self.turns = turns

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        assert method == "thread/turns/list"
        return {"data": self.turns.get(params["threadId"], [])}


def running(title: str, source: str, turn_id: str) -> Lane:
    lane = lane_register(
        thread_id=f"thread-{title}", title=title, source=source, cwd="/", host=HOST
    )
    Lane.objects.filter(pk=lane.pk).update(
        status=Lane.Status.BUSY, active_turn_id=turn_id, latest_turn_id=turn_id
    )
    return lane


def test_it_closes_owned_turns_and_attached_ones_only_when_codex_says_so() -> None:
    running("own-cut", "own", "t1")
    running("own-done", "own", "t2")
    running("attached-running", "attached", "t3")
    running("attached-done", "attached", "t4")
    lost = lost_turns(host=HOST)
    codex = Codex(
        {
            "thread-own-cut": [{"id": "t1", "status": "inProgress"}],
            "thread-own-done": [{"id": "t2", "status": "completed", "error": None}],
            "thread-attached-running": [{"id": "t3", "status": "inProgress"}],
            "thread-attached-done": [
                {"id": "t4", "status": "failed", "error": {"message": "boom"}}
            ],
        }
    )
    events = asyncio.run(lost_turn_events(codex, lost, reason="gone"))  # type: ignore[arg-type]
    by_turn = {e["params"]["turn"]["id"]: e["params"] for e in events}
    # An attached lane's turn may still run in its own Codex: left alone.
    assert set(by_turn) == {"t1", "t2", "t4"}
    assert by_turn["t1"]["turn"]["status"] == "interrupted"
    assert by_turn["t1"]["dispatchRecovery"] == {"reason": "gone", "source": "none"}
    assert by_turn["t2"]["turn"]["status"] == "completed"
    assert by_turn["t2"]["dispatchRecovery"]["source"] == "thread/turns/list"
    assert by_turn["t4"]["turn"]["error"] == {"message": "boom"}

    journal_write_batch(events, SeqCounter())
    cut = Lane.objects.get(thread_id="thread-own-cut")
    assert (cut.status, cut.active_turn_id, cut.latest_turn_status) == (
        "idle",
        "",
        "interrupted",
    )
    # Cut by a crash, not stopped by anyone: the queue may move, and the
    # lane says why.
    assert not cut.queue_held and cut.latest_error == "gone"
    failed = Lane.objects.get(thread_id="thread-attached-done")
    assert (failed.status, failed.latest_error, failed.queue_held) == (
        "error",
        "boom",
        True,
    )
    # The turn index closes the cut turn but leaves its items to sync.
    turn = LaneTurn.objects.get(thread_id="thread-own-cut", turn_id="t1")
    assert turn.status == "interrupted" and not turn.live_completed
    assert lost_turns(host=HOST) == [("thread-attached-running", "t3", False)]


def test_it_closes_as_interrupted_when_there_is_no_app_server_to_ask() -> None:
    running("no-server", "own", "t9")
    events = asyncio.run(lost_turn_events(None, lost_turns(host=HOST), reason="down"))
    (event,) = events
    assert event["method"] == "turn/completed"
    assert event["params"]["turn"]["status"] == "interrupted"
    assert event["params"]["turn"]["error"] == {"message": "down"}
