"""goal status/set/clear, lane fork/rollback/compact, and their audit rows.

One module on purpose: the compact test reads back the audit rows that the
goal and rollback tests wrote on the shared module-scoped `origin` lane.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.lanes.conftest import Stack, cli, wait_for


def lane_get(stack: Stack, selector: str) -> dict[str, Any]:
    status, out, err = cli("get", selector, env=stack.env)
    assert status == 0, err
    return out


@pytest.fixture(scope="module")
def origin(stack: Stack) -> dict[str, Any]:
    status, out, err = cli(
        "new", "--name", "origin", "--text", "seed words", env=stack.env
    )
    assert status == 0, err
    wait_for(lambda: stack.lane_state(out["ref"])["latest_turn_status"] == "completed")
    return out


def test_it_sets_reads_and_clears_a_goal(stack: Stack, origin: dict[str, Any]) -> None:
    ref = origin["ref"]
    status, out, err = cli("goal", "status", ref, env=stack.env)
    assert status == 0, err
    assert out["goal"] is None and out["ref"] == ref and out["writable"] is True

    status, out, err = cli("goal", "set", ref, "--status", "active", env=stack.env)
    assert status == 2, (out, err)
    assert "objective" in err["error"]["message"]
    status, out, err = cli("goal", "set", ref, env=stack.env)
    assert status == 2, (out, err)

    status, out, err = cli(
        "goal",
        "set",
        ref,
        "write the docs",
        "--status",
        "paused",
        "--token-budget",
        "500",
        env=stack.env,
    )
    assert status == 0, err
    goal = out["goal"]
    assert goal["objective"] == "write the docs" and goal["status"] == "paused"
    assert goal["token_budget"] == 500 and goal["tokens_used"] == 0
    assert goal["thread_id"] == origin["id"] and goal["created_at"].endswith("+00:00")
    sent = stack.received("thread/goal/set")[-1]["params"]
    assert sent == {
        "threadId": origin["id"],
        "objective": "write the docs",
        "status": "paused",
        "tokenBudget": 500,
    }

    status, out, err = cli("goal", "status", ref, env=stack.env)
    assert status == 0, err
    assert out["goal"]["objective"] == "write the docs"

    status, out, err = cli("goal", "clear", ref, "--no-interactive", env=stack.env)
    assert status == 2, (out, err)
    status, out, err = cli("goal", "clear", ref, "--yes", env=stack.env)
    assert status == 0, err
    assert out["goal"] is None and out["cleared"] is True
    assert lane_get(stack, ref)["goal"] is None


def test_it_forks_a_lane_into_a_new_owned_lane(
    stack: Stack, origin: dict[str, Any]
) -> None:
    status, out, err = cli(
        "lane", "fork", origin["ref"], "--name", "branch", env=stack.env
    )
    assert status == 0, err
    assert out["source"] == "own" and out["handle"] == "@branch"
    assert out["forked_from"] == {"ref": origin["ref"], "id": origin["id"]}
    assert out["id"] != origin["id"]
    fork = stack.received("thread/fork")[-1]["params"]
    assert fork == {"threadId": origin["id"], "excludeTurns": True}

    # The fork inherits history the journal never saw: tail asks Codex.
    status, out, err = cli("tail", "@branch", env=stack.env)
    assert status == 0, err
    assert out["transcript_source"] == "app-server"
    assert ("userMessage", "seed words") in [
        (i["type"], i["text"]) for i in out["items"]
    ]


def test_it_reports_rollback_as_unavailable_in_codex_0_169(
    stack: Stack, origin: dict[str, Any]
) -> None:
    status, out, err = cli(
        "lane", "rollback", origin["ref"], "--no-interactive", env=stack.env
    )
    assert status == 2, (out, err)
    status, out, err = cli(
        "lane", "rollback", origin["ref"], "--turns", "1", "--yes", env=stack.env
    )
    assert status == 8, (out, err)
    error = err["error"]
    assert error["code"] == "capability_unavailable"
    assert "0.169.0" in error["message"] and "thread/rollback" in error["message"]
    assert "lane fork" in error["hint"]


def test_it_compacts_a_lane_and_audits_every_write(
    stack: Stack, origin: dict[str, Any]
) -> None:
    status, out, err = cli("lane", "compact", origin["ref"], env=stack.env)
    assert status == 0, err
    assert out["op"] == "compact" and out["accepted"] is True
    assert stack.received("thread/compact/start")[-1]["params"] == {
        "threadId": origin["id"]
    }
    wait_for(lambda: not stack.lane_state(origin["ref"])["active_turn_id"])

    status, out, err = cli("daemon", "log", "--limit", "100", env=stack.env)
    assert status == 0, err
    ops = [
        (a["op"], a["outcome"]) for a in out["actions"] if a["lane"] == origin["ref"]
    ]
    for expected in [
        ("new", "ok"),
        ("goal-set", "validation"),
        ("goal-set", "ok"),
        ("goal-clear", "ok"),
        ("rollback", "capability_unavailable"),
        ("compact", "ok"),
    ]:
        assert expected in ops


def test_it_creates_a_goal_paused_and_activates_it_after_the_first_turn(
    stack: Stack,
) -> None:
    status, out, err = cli(
        "new",
        "--name",
        "goaly",
        "--goal",
        "keep going",
        "--text",
        "start here",
        env=stack.env,
    )
    assert status == 0, err
    assert out["message_accepted"] is True and out["goal_set"] is True
    calls = [
        (r["method"], r["params"].get("status"))
        for r in stack.received()
        if r.get("method") in ("thread/goal/set", "turn/start")
        and r["params"]["threadId"] == out["id"]
    ]
    # Active first would start a goal turn that the first message only steers.
    assert calls[:3] == [
        ("thread/goal/set", "paused"),
        ("turn/start", None),
        ("thread/goal/set", "active"),
    ]
    status, out, err = cli("goal", "clear", "goaly", "--yes", env=stack.env)
    assert status == 0, err
