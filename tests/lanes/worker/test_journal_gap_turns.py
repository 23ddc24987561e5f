"""A turn's end dropped from the journal while the database refused writes.

With a small hold limit (DISPATCH_JOURNAL_HOLD_LIMIT) the worker drops the
newest events of a read-only outage, the turn's turn/completed among them.
Once writes work again it records the gap and reads the turn back from the
app-server (`thread/turns/list`), so the lane does not stay busy: `get`,
`list`, `watch` and the turn index all show the turn's real final status.
On the fake app-server and on the real codex against the mock Responses
server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import REPO, Stack, wait_for

pytestmark = pytest.mark.timeout(240)

HOOK = Path(__file__).resolve().parents[2] / "support" / "readonly_db"
SLOW = "[[slow:0.3]]"  # 20 deltas 0.3 s apart, on either backend


@pytest.fixture
def flag(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "read-only"
    yield path
    path.unlink(missing_ok=True)  # else the stack cannot stop cleanly


@pytest.fixture
def stack(start_stack: Callable[..., Stack], flag: Path) -> Stack:
    return start_stack(
        extra_env={
            "PYTHONPATH": f"{HOOK}:{REPO}",
            "DISPATCH_TEST_READONLY_FLAG": str(flag),
            # Three events held, the rest of the turn dropped.
            "DISPATCH_JOURNAL_HOLD_LIMIT": "3",
        }
    )


def journal_status(stack: Stack) -> dict[str, Any]:
    journal = stack.worker_state()["journal"]
    assert isinstance(journal, dict)
    return journal


def lost_methods(stack: Stack) -> dict[str, int]:
    failing = journal_status(stack)["failing"] or {}
    return dict(failing.get("lost_methods") or {})


def test_it_reads_a_dropped_turn_end_back_and_leaves_the_lane_idle(
    stack: Stack, flag: Path
) -> None:
    lane = stack.cli_ok("new", "--name", "gap", "--text", "warm up")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    sent = stack.cli_ok("send", lane["ref"], f"{SLOW} through the outage")
    turn = sent["turn_id"]
    flag.touch()
    wait_for(
        lambda: "turn/completed" in lost_methods(stack),
        timeout=90,
        what="the turn to end while its events are dropped",
    )
    # Without the turn's end the database still has it running.
    row = stack.lane_row(lane["id"])
    assert (row["status"], row["active_turn_id"]) == ("busy", turn)

    flag.unlink()
    wait_for(
        lambda: journal_status(stack)["ok"], timeout=60, what="the journal to resume"
    )
    stack.wait_lane(
        lane["id"],
        lambda r: r["status"] == "idle" and not r["active_turn_id"],
        timeout=60,
        what="the lane to be reconciled",
    )
    got = stack.cli_ok("get", lane["ref"])
    assert got["status"] == "idle", got
    assert (got["latest_turn"]["id"], got["latest_turn"]["status"]) == (
        turn,
        "completed",
    ), got
    (listed,) = [x for x in stack.cli_ok("list")["lanes"] if x["id"] == lane["id"]]
    assert listed["status"] == "idle", listed

    watched = stack.cli_ok("watch", lane["ref"], "--after", "0", "--limit", "500")
    events = watched["events"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    (gap,) = [e["params"] for e in events if e["method"] == "dispatch/journal/gap"]
    assert gap["lost"] > 0 and "turn/completed" in gap["lostMethods"]
    assert gap["lostTurnEnds"] == [turn]
    ends = [
        e
        for e in events
        if e["method"] == "turn/completed" and e["params"]["turn"]["id"] == turn
    ]
    # One end for the turn, after the gap, with codex's status read back.
    assert len(ends) == 1, ends
    (end,) = ends
    assert end["seq"] > max(e["seq"] for e in events if e["method"].endswith("/gap"))
    assert end["params"]["turn"]["status"] == "completed"
    recovery = end["params"]["dispatchRecovery"]
    assert recovery["cause"] == "journal-gap"
    assert recovery["source"] == "thread/turns/list"
    (indexed,) = stack.query(
        "select status from lanes_laneturn where thread_id = ? and turn_id = ?",
        lane["id"],
        turn,
    )
    assert indexed == ("completed",)
    assert lane["id"] in journal_status(stack)["last_outage"]["lanes"]
    # The lane is usable: the next turn runs and is journaled as usual.
    again = stack.cli_ok("send", lane["ref"], "after the gap")
    row = stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] == again["turn_id"]
            and r["latest_turn_status"] == "completed"
        ),
        timeout=60,
        what="a turn after the gap",
    )
    assert row["status"] == "idle"
    params = stack.query(
        "select params from lanes_laneevent where thread_id = ? and turn_id = ?"
        " and method = 'turn/completed'",
        lane["id"],
        again["turn_id"],
    )
    assert [json.loads(p)["turn"]["status"] for (p,) in params] == ["completed"]
