"""The worker's journal while the database refuses writes (in-process).

A read-only (or full) database is simulated on the test DB connection: every
INSERT/UPDATE/DELETE fails with the OperationalError SQLite raises then,
reads keep working. The keeper holds events, drops past its bound, and on
recovery writes what it held and a `dispatch/journal/gap` event per lane.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from django.db import OperationalError, connection

from lanes.appserver.client import AppServerClient
from lanes.journal.writer import (
    IF_TURN_OPEN,
    JournalResult,
    SeqCounter,
    journal_write_batch,
)
from lanes.models import Lane, LaneEvent
from lanes.services import lane_register
from lanes.worker.gap_repair import gap_event, lane_gap_events
from lanes.worker.journal_health import JOURNAL_GAP, JournalKeeper, LostTurns

READ_ONLY = "attempt to write a readonly database"


def refuse_writes(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
        raise OperationalError(READ_ONLY)
    return execute(sql, params, many, context)


@contextmanager
def read_only() -> Iterator[None]:
    with connection.execute_wrapper(refuse_writes):
        yield


@pytest.fixture
def lane(db: None) -> Lane:
    return lane_register(
        thread_id="thread-ro", title="ro", source="own", cwd="/tmp", host="testhost"
    )


def delta(n: int, turn: str = "t1") -> dict[str, Any]:
    return {
        "method": "item/agentMessage/delta",
        "params": {"threadId": "thread-ro", "turnId": turn, "delta": str(n)},
    }


class StubAppServer:
    """Answers thread/turns/list with `turns`, or fails like a dead app-server."""

    def __init__(self, turns: list[dict[str, Any]] | None) -> None:
        self.turns = turns
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def request(self, method: str, params: dict[str, Any], **_: Any) -> Any:
        self.asked.append((method, params))
        if self.turns is None:
            raise ConnectionError("app-server gone")
        return {"data": self.turns, "nextCursor": None}


class Harness:
    def __init__(self, limit: int, app_server: StubAppServer | None = None) -> None:
        self.counter = SeqCounter()
        self.published: list[JournalResult] = []
        client = cast(AppServerClient, app_server)

        async def reconcile(lost: dict[str, LostTurns]) -> list[dict[str, Any]]:
            # gap_turn_events without asyncio.gather: run_inline has no loop.
            return [
                message
                for thread_id, turns in lost.items()
                for message in await lane_gap_events(client, thread_id, turns)
            ]

        async def write(batch: list[dict[str, Any]]) -> JournalResult:
            return journal_write_batch(batch, self.counter)

        async def written(result: JournalResult) -> None:
            self.published.append(result)

        self.keeper = JournalKeeper(
            write=write, written=written, limit=limit, reconcile=reconcile
        )

    def write(self, batch: list[dict[str, Any]]) -> None:
        run_inline(self.keeper.write(batch))

    def resume(self) -> None:
        run_inline(self.keeper.resume())


def run_inline(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends, in this thread and context.

    The test database lives in this thread's transaction; an event loop
    would give the keeper's writes another connection, locked out of it.
    """
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("the keeper waited on something")


def journal() -> list[tuple[int, str, dict[str, Any]]]:
    rows = LaneEvent.objects.filter(thread_id="thread-ro").order_by("seq")
    return [(row.seq, row.method, row.params) for row in rows]


def test_it_holds_events_while_read_only_and_records_the_gap(lane: Lane) -> None:
    harness = Harness(limit=5)
    harness.write([delta(0)])
    with read_only():
        harness.write([delta(1), delta(2), delta(3)])
        harness.write([delta(4), delta(5), delta(6, turn="t2"), delta(7, turn="t2")])
        status = harness.keeper.status()
        assert status["ok"] is False
        failing = status["failing"]
        assert failing["error"] == READ_ONLY and failing["since"]
        assert (failing["held"], failing["lost"]) == (5, 2)
        harness.resume()  # still refused: nothing written, nothing forgotten
        assert harness.keeper.status()["failing"]["held"] == 5
    assert [seq for seq, _m, _p in journal()] == [1]

    harness.resume()
    events = journal()
    # Contiguous: the seqs the refused writes took were given back.
    assert [seq for seq, _m, _p in events] == [1, 2, 3, 4, 5, 6, 7]
    assert [p.get("delta") for _s, _m, p in events[:6]] == list("012345")
    seq, method, gap = events[-1]
    assert method == JOURNAL_GAP
    assert gap["writtenLate"] == 5 and gap["lost"] == 2
    assert gap["lostMethods"] == {"item/agentMessage/delta": 2}
    assert gap["lostTurnIds"] == ["t2"]
    assert gap["error"] == READ_ONLY
    assert gap["from"] <= gap["lostReceivedFrom"] <= gap["until"]
    status = harness.keeper.status()
    assert status["ok"] is True and status["failing"] is None
    assert status["last_outage"]["lost"] == 2
    assert status["last_outage"]["lanes"] == ["thread-ro"]
    # Every written row was published, the gap event included, once each.
    published = [row.seq for r in harness.published for row in r.rows]
    assert published == [1, 2, 3, 4, 5, 6, 7]

    harness.write([delta(8)])  # back to normal: straight to the journal
    assert journal()[-1][0] == 8


def test_it_follows_lane_state_from_held_events(lane: Lane) -> None:
    harness = Harness(limit=100)
    turn: dict[str, Any] = {
        "id": "t9",
        "status": "completed",
        "items": [],
        "error": None,
    }
    with read_only():
        harness.write(
            [
                {
                    "method": "turn/started",
                    "params": {
                        "threadId": "thread-ro",
                        "turn": {**turn, "status": "inProgress"},
                    },
                },
                {
                    "method": "turn/completed",
                    "params": {"threadId": "thread-ro", "turn": turn},
                },
            ]
        )
    lane.refresh_from_db()
    assert lane.latest_turn_id != "t9"
    harness.resume()
    lane.refresh_from_db()
    assert (lane.latest_turn_id, lane.latest_turn_status) == ("t9", "completed")
    (gap,) = [p for _s, m, p in journal() if m == JOURNAL_GAP]
    assert gap["writtenLate"] == 2 and gap["lost"] == 0


def turn_message(method: str, turn_id: str, **turn: Any) -> dict[str, Any]:
    return {
        "method": method,
        "params": {"threadId": "thread-ro", "turn": {"id": turn_id, **turn}},
    }


FAILED = {"status": "failed", "error": {"message": "provider said no"}}


@pytest.mark.parametrize(
    ("turns", "source"),
    [
        ([{"id": "t5", "durationMs": 1234, **FAILED}], "thread/turns/list"),
        (None, "dropped event"),  # the app-server cannot say: the event did
    ],
)
def test_it_sets_the_lane_from_a_turn_end_dropped_in_the_gap(
    lane: Lane, turns: list[dict[str, Any]] | None, source: str
) -> None:
    app_server = StubAppServer(turns)
    harness = Harness(limit=2, app_server=app_server)
    harness.write([turn_message("turn/started", "t5", status="inProgress")])
    lane.refresh_from_db()
    assert (lane.status, lane.active_turn_id) == ("busy", "t5")
    with read_only():
        harness.write([delta(1, "t5"), delta(2, "t5"), delta(3, "t5")])
        harness.write([turn_message("turn/completed", "t5", **FAILED)])
    harness.resume()

    lane.refresh_from_db()
    assert (lane.status, lane.active_turn_id) == ("error", "")
    assert (lane.latest_turn_id, lane.latest_turn_status) == ("t5", "failed")
    assert lane.latest_error == "provider said no"
    assert lane.queue_held  # a failed turn holds the queue, as always
    assert [m for m, _p in app_server.asked] == ["thread/turns/list"]
    methods = [m for _s, m, _p in journal()]
    assert methods[-2:] == [JOURNAL_GAP, "turn/completed"]
    gap, end = journal()[-2][2], journal()[-1][2]
    assert gap["lostTurnEnds"] == ["t5"] and gap["lost"] == 2
    assert end["turn"]["status"] == "failed"
    assert end["dispatchRecovery"]["source"] == source
    assert end["dispatchRecovery"]["cause"] == "journal-gap"
    if turns is not None:
        assert end["turn"]["durationMs"] == 1234
    # Published like any other row: websockets get the end too.
    published = [row.method for r in harness.published for row in r.rows]
    assert published[-1] == "turn/completed"


def test_it_starts_a_turn_the_gap_hid_that_still_runs(lane: Lane) -> None:
    running = {"id": "t6", "status": "inProgress", "error": None}
    harness = Harness(limit=1, app_server=StubAppServer([running]))
    with read_only():
        harness.write([delta(0, "t6"), turn_message("turn/started", "t6")])
    harness.resume()
    lane.refresh_from_db()
    assert (lane.status, lane.active_turn_id, lane.latest_turn_id) == (
        "busy",
        "t6",
        "t6",
    )
    assert journal()[-1][1] == "turn/started"


def test_it_skips_a_read_back_event_the_turns_own_end_overtook(lane: Lane) -> None:
    counter = SeqCounter()
    done = turn_message("turn/completed", "t7", status="completed", error=None)
    journal_write_batch([done], counter)
    late = gap_event(
        "turn/started",
        "thread-ro",
        {"id": "t7", "status": "inProgress"},
        source="thread/turns/list",
    )
    assert late[IF_TURN_OPEN] is True
    result = journal_write_batch([late], counter)
    assert result.rows == []
    lane.refresh_from_db()
    assert (lane.status, lane.active_turn_id) == ("idle", "")
    assert [m for _s, m, _p in journal()] == ["turn/completed"]
