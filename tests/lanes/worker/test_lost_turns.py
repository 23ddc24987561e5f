"""Turns cut off by a crash or a restart end in the journal, for every reader.

When the worker finds a turn gone (its app-server was killed, the worker was
killed, or `down` came mid-turn) it journals a turn/completed for it with
the status codex reports, or `interrupted`, so watch, websockets, the live
page and history (the turn index) agree with the lane row.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.stack import Stack, pid_alive, wait_for


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def slow_text(text: str) -> str:
    return f"[[slow:1.5]] {text}"


def completions(stack: Stack, thread_id: str, turn_id: str) -> list[dict[str, Any]]:
    rows = stack.query(
        "select params from lanes_laneevent where thread_id = ? and turn_id = ?"
        " and method = 'turn/completed' order by seq",
        thread_id,
        turn_id,
    )
    return [json.loads(params) for (params,) in rows]


def busy_turn(stack: Stack, name: str) -> tuple[dict[str, Any], str]:
    lane = stack.cli_ok("new", "--name", name, "--text", slow_text("long one"))
    row = stack.wait_lane(
        lane["id"],
        lambda r: r["status"] == "busy" and r["active_turn_id"],
        timeout=30,
        what="the turn to start",
    )
    return lane, str(row["active_turn_id"])


def assert_closed_for_every_reader(
    stack: Stack, lane: dict[str, Any], turn_id: str, status: str
) -> dict[str, Any]:
    (done,) = completions(stack, lane["id"], turn_id)
    assert done["turn"]["status"] == status
    # The journal stays contiguous around the written event.
    seqs = [seq for seq, _ in stack.events(lane["id"])]
    assert seqs == list(range(1, len(seqs) + 1))
    # watch (the journal as clients read it) ends the turn.
    watched = stack.cli_ok("watch", lane["ref"], "--after", "0", "--limit", "500")
    ends = [
        e
        for e in watched["events"]
        if e["method"] == "turn/completed" and e["params"]["turn"]["id"] == turn_id
    ]
    assert [e["params"]["turn"]["status"] for e in ends] == [status]
    # history's turn index no longer says inProgress.
    (indexed,) = stack.query(
        "select status from lanes_laneturn where thread_id = ? and turn_id = ?",
        lane["id"],
        turn_id,
    )
    assert indexed == (status,)
    got = stack.cli_ok("get", lane["ref"])
    assert got["latest_turn"]["status"] == status
    return done


def test_it_journals_the_end_of_a_turn_cut_off_by_an_app_server_crash(
    stack: Stack,
) -> None:
    lane, turn_id = busy_turn(stack, "crash")
    os.kill(stack.worker_state()["app_server_pid"], signal.SIGKILL)
    wait_for(
        lambda: completions(stack, lane["id"], turn_id),
        timeout=10,
        what="a turn/completed for the cut-off turn",
    )
    done = assert_closed_for_every_reader(stack, lane, turn_id, "interrupted")
    assert (
        done["dispatchRecovery"]["reason"] == "the app-server exited during this turn"
    )
    assert "exited" in done["turn"]["error"]["message"]
    row = stack.lane_row(lane["id"])
    assert row["status"] == "idle" and not row["queue_held"]
    # The lane is usable: the next turn runs to completion.
    stack.cli_ok("send", lane["ref"], "after the crash")
    stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] != turn_id and r["latest_turn_status"] == "completed"
        ),
        timeout=30,
    )


@pytest.mark.parametrize("how", ["down", "kill"])
def test_it_reads_back_a_turn_cut_off_by_a_worker_stop(stack: Stack, how: str) -> None:
    lane, turn_id = busy_turn(stack, f"worker-{how}")
    app_server = stack.worker_state()["app_server_pid"]
    # `down` stops the worker with SIGTERM; a crash is SIGKILL.
    stack.kill("worker", signal.SIGTERM if how == "down" else signal.SIGKILL)
    wait_for(lambda: not pid_alive(app_server), timeout=10, what="app-server exit")
    assert completions(stack, lane["id"], turn_id) == []
    stack.start_worker()
    wait_for(
        lambda: completions(stack, lane["id"], turn_id),
        timeout=10,
        what="a turn/completed for the turn cut off by the worker stop",
    )
    done = assert_closed_for_every_reader(stack, lane, turn_id, "interrupted")
    recovery = done["dispatchRecovery"]
    assert recovery["reason"] == "dispatch restarted during this turn"
    if stack.codex == "real":
        # Not guessed: codex itself reports how the turn ended.
        assert recovery["source"] == "thread/turns/list"
        assert done["turn"]["completedAt"] >= done["turn"]["startedAt"]
    row = stack.lane_row(lane["id"])
    assert row["status"] == "idle" and not row["queue_held"]
    assert "restarted" in row["latest_error"]
