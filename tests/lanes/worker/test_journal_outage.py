"""A read-only database mid-turn, under `dispatch up`, on the fake app-server.

tests/support/readonly_db makes every write of every dispatch process fail
while a flag file exists, as SQLite does on a read-only or full database.
The worker says so in `daemon status` and `doctor`, keeps its app-server and
the turn, and once writes work again journals what it held and a
`dispatch/journal/gap` event recording the outage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import REPO, Stack, wait_for
from tests.support.supervised import Supervised

pytestmark = pytest.mark.timeout(240)

HOOK = Path(__file__).resolve().parents[2] / "support" / "readonly_db"


@pytest.fixture
def flag(tmp_path: Path) -> Path:
    return tmp_path / "read-only"


@pytest.fixture
def supervised(tmp_path: Path, flag: Path) -> Iterator[Supervised]:
    env = {"PYTHONPATH": f"{HOOK}:{REPO}", "DISPATCH_TEST_READONLY_FLAG": str(flag)}
    running = Supervised(Stack(tmp_path, codex="fake", extra_env=env))
    try:
        yield running
    finally:
        flag.unlink(missing_ok=True)
        running.down()


def journal_status(stack: Stack) -> dict[str, Any]:
    journal = stack.cli_ok("daemon", "status")["daemon"]["journal"]
    assert isinstance(journal, dict)
    return journal


def doctor_journal(stack: Stack) -> dict[str, Any]:
    result = stack.cli("doctor", "--no-app-server")
    (check,) = [
        c for c in json.loads(result.stdout)["checks"] if c["name"] == "journal"
    ]
    assert isinstance(check, dict)
    return check


def test_it_holds_the_journal_through_a_read_only_database(
    supervised: Supervised, flag: Path
) -> None:
    stack = supervised.stack
    lane = stack.cli_ok("new", "--name", "ro", "--text", "warm up")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    assert journal_status(stack)["ok"] is True
    app_server = stack.cli_ok("daemon", "status")["daemon"]["app_server"]["pid"]
    stack.cli_ok("send", lane["ref"], "[[slow:0.3]] through the outage")
    turn = stack.wait_lane(
        lane["id"], lambda r: r["active_turn_id"], timeout=30, what="the turn"
    )["active_turn_id"]
    before = stack.events(lane["id"])[-1][0]

    flag.touch()
    failing = wait_for(
        lambda: journal_status(stack)["failing"],
        timeout=30,
        what="`daemon status` to report the failing journal",
    )
    assert "readonly" in failing["error"]
    check = doctor_journal(stack)
    assert check["status"] == "fail", check
    assert "cannot write the journal" in check["summary"]
    assert "readonly" in check["summary"] and check["recovery"]
    # The turn runs on in the same app-server; its events are held.
    wait_for(
        lambda: journal_status(stack)["failing"]["held"] >= 5,
        timeout=30,
        what="events to be held",
    )
    assert stack.events(lane["id"])[-1][0] == before
    status = stack.cli_ok("daemon", "status")["daemon"]
    assert status["app_server"]["pid"] == app_server
    assert status["components"]["worker"]["restarts"] == 0

    flag.unlink()
    wait_for(
        lambda: journal_status(stack)["ok"],
        timeout=30,
        what="the journal to resume",
    )
    stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] == turn and r["latest_turn_status"] == "completed"
        ),
        timeout=60,
        what="the turn to complete in the journal",
    )
    events = stack.query(
        "select seq, method, params from lanes_laneevent where thread_id = ?"
        " order by seq",
        lane["id"],
    )
    seqs = [seq for seq, _m, _p in events]
    assert seqs == list(range(1, len(seqs) + 1))
    methods = [m for _s, m, _p in events if _s > before]
    assert methods.count("turn/completed") == 1
    (gap,) = [json.loads(p) for _s, m, p in events if m == "dispatch/journal/gap"]
    assert gap["writtenLate"] > 0 and gap["lost"] == 0
    assert "readonly" in gap["error"] and gap["from"] < gap["until"]
    assert doctor_journal(stack)["status"] == "ok"
    last = journal_status(stack)["last_outage"]
    assert last["lanes"] == [lane["id"]] and last["lost"] == 0
    assert stack.cli_ok("daemon", "status")["daemon"]["app_server"]["pid"] == app_server
