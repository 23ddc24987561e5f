"""goal history: one row per goal, with usage from the app-server and who acted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lanes.conftest import Stack, cli, wait_for


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {"FAKE_APPSERVER_MAX_GOAL_TURNS": "3"}


def history(stack: Stack, ref: str) -> list[dict[str, Any]]:
    status, out, err = cli("goal", "history", ref, env=stack.env)
    assert status == 0, err
    assert out["ref"] == ref
    return list(out["goals"])


def test_it_keeps_every_goal_a_lane_had(stack: Stack) -> None:
    status, lane, err = cli("new", "--name", "goals", "--text", "start", env=stack.env)
    assert status == 0, err
    ref = lane["ref"]
    wait_for(lambda: stack.lane_state(ref)["latest_turn_status"] == "completed")
    assert history(stack, ref) == []

    status, out, err = cli(
        "goal", "set", ref, "first aim", "--token-budget", "200", env=stack.env
    )
    assert status == 0, err
    # The active goal runs turns; their usage arrives in goal notifications
    # until the budget stops it.
    rows = wait_for(
        lambda: [
            g
            for g in history(stack, ref)
            if g["status"] == "budgetLimited" and (g["tokens_used"] or 0) >= 200
        ],
        timeout=30,
        what="the goal's usage from thread/goal/updated",
    )
    (first,) = rows
    assert first["objective"] == "first aim" and first["token_budget"] == 200
    assert first["set_by"].startswith("cli") and first["current"] is True
    assert first["cleared_at"] is None and first["completed_at"] is None

    status, out, err = cli(
        "goal", "set", ref, "second aim", "--status", "paused", env=stack.env
    )
    assert status == 0, err
    status, out, err = cli("goal", "set", ref, "--status", "complete", env=stack.env)
    assert status == 0, err
    status, out, err = cli("goal", "clear", ref, "--yes", env=stack.env)
    assert status == 0, err

    goals = wait_for(
        lambda: (g := history(stack, ref)) and g[-1]["cleared_by"] and g,
        timeout=15,
        what="the clear in the history",
    )
    assert [g["objective"] for g in goals] == ["first aim", "second aim"]
    old, new = goals
    assert old["cleared_by"] == "replaced" and old["current"] is False
    assert old["tokens_used"] >= 200
    assert new["status"] == "complete" and new["completed_at"] is not None
    assert new["cleared_by"].startswith("cli") and new["cleared_at"] is not None
    assert new["set_by"].startswith("cli") and new["current"] is False

    methods = [m for _, m in stack.events(lane["id"]) if m.startswith("dispatch/")]
    assert methods.count("dispatch/goal/set") == 3
    assert methods[-1] == "dispatch/goal/cleared"


def test_it_names_the_lane_it_cannot_find(stack: Stack) -> None:
    status, out, err = cli("goal", "history", "@no-such-lane", env=stack.env)
    assert status == 4, (out, err)
