"""The approvals inbox on the fake app-server: hold, respond, time out, expire.

The fake runs in approval mode: every turn asks to run a command
(item/commandExecution/requestApproval) before it replies. Tests drive the
stack through the CLI and read what the fake received back.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.lanes.conftest import Stack, cli, wait_for


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {"FAKE_APPSERVER_MODE": "approval"}


@pytest.fixture(autouse=True)
def hold_policy(stack: Stack) -> None:
    stack.write_config('[policy]\napprovals = "hold"\n')


def held(stack: Stack, lane: str | None = None) -> list[dict[str, Any]]:
    args = ["request", "list", *(["--lane", lane] if lane else [])]
    status, out, err = cli(*args, env=stack.env)
    assert status == 0, err
    return list(out["requests"])


def new_lane(stack: Stack, name: str, *extra: str) -> dict[str, Any]:
    status, out, err = cli(
        "new", "--name", name, "--text", f"{name} please", *extra, env=stack.env
    )
    assert status == 0, err
    return dict(out)


def wait_held(stack: Stack, lane: dict[str, Any]) -> dict[str, Any]:
    rows = wait_for(
        lambda: stack.query(
            "select id from lanes_serverrequest where thread_id = ? and held = 1"
            " and state = 'pending'",
            lane["id"],
        ),
        timeout=30,
        what="a held approval",
    )
    listed = [r for r in held(stack, lane["ref"]) if r["id"] == rows[0][0]]
    assert len(listed) == 1
    return listed[0]


def replies_to_approvals(stack: Stack, thread_id: str) -> list[dict[str, Any]]:
    """What dispatch answered the fake's approval requests of one thread."""
    asked = {
        json_id
        for json_id, tid in stack.query(
            "select request_id, thread_id from lanes_serverrequest"
        )
        if tid == thread_id
    }
    return [
        entry
        for entry in stack.received()
        if "method" not in entry and str(entry.get("id")) in asked
    ]


def turn_completed(stack: Stack, ref: str, what: str) -> None:
    wait_for(
        lambda: stack.lane_state(ref)["latest_turn_status"] == "completed",
        timeout=30,
        what=what,
    )


def dispatch_events(stack: Stack, thread_id: str) -> list[tuple[int, str]]:
    return [(s, m) for s, m in stack.events(thread_id) if m.startswith("dispatch/")]


def test_it_holds_an_approval_until_request_respond_accepts(stack: Stack) -> None:
    lane = new_lane(stack, "hold-accept")
    request = wait_held(stack, lane)
    assert request["lane"] == lane["ref"] and request["handle"] == "@hold-accept"
    assert request["method"] == "item/commandExecution/requestApproval"
    assert request["command"] == "echo fake" and request["state"] == "pending"
    # The turn waits: nothing answered the fake yet.
    assert stack.lane_state(lane["ref"])["status"] == "waiting_approval"
    assert stack.lane_state(lane["ref"])["latest_turn_status"] == "started"
    assert replies_to_approvals(stack, lane["id"]) == []

    status, out, err = cli(
        "request", "respond", str(request["id"]), "accept", env=stack.env
    )
    assert status == 0, err
    answered = out["request"]
    assert answered["state"] == "responded" and answered["decision"] == "accept"
    assert answered["answered_by"].startswith("cli")
    wait_for(
        lambda: stack.lane_state(lane["ref"])["latest_turn_status"] == "completed",
        timeout=30,
        what="the turn to complete",
    )
    replies = replies_to_approvals(stack, lane["id"])
    assert [r["result"] for r in replies] == [{"decision": "accept"}]
    assert held(stack, lane["ref"]) == []

    # Answering again changes nothing, and the fake got one answer only.
    status, out, err = cli(
        "request", "respond", str(request["id"]), "decline", env=stack.env
    )
    assert status == 5, (out, err)
    assert "no longer pending" in err["error"]["message"]
    assert "accept" in err["error"]["message"]
    assert len(replies_to_approvals(stack, lane["id"])) == 1

    events = stack.events(lane["id"])
    assert [s for s, _ in events] == list(range(1, len(events) + 1))
    methods = [m for _, m in dispatch_events(stack, lane["id"])]
    assert methods == ["dispatch/approval/pending", "dispatch/approval/answered"]


def test_it_cancels_a_held_approval_and_the_turn_ends(stack: Stack) -> None:
    lane = new_lane(stack, "hold-cancel")
    request = wait_held(stack, lane)
    status, out, err = cli(
        "request", "respond", str(request["id"]), "cancel", env=stack.env
    )
    assert status == 0, err
    wait_for(
        lambda: stack.lane_state(lane["ref"])["latest_turn_status"] == "interrupted",
        timeout=30,
        what="the turn to end interrupted",
    )
    replies = replies_to_approvals(stack, lane["id"])
    assert [r["result"] for r in replies] == [{"decision": "cancel"}]


def test_it_declines_what_waits_longer_than_approval_timeout_s(
    stack: Stack,
) -> None:
    stack.write_config('[policy]\napprovals = "hold"\napproval_timeout_s = 1\n')
    lane = new_lane(stack, "hold-timeout")
    wait_for(
        lambda: stack.lane_state(lane["ref"])["latest_turn_status"] == "completed",
        timeout=30,
        what="the timed-out approval to be declined",
    )
    replies = replies_to_approvals(stack, lane["id"])
    assert [r["result"] for r in replies] == [{"decision": "decline"}]
    (pk,) = stack.query(
        "select id from lanes_serverrequest where thread_id = ?", lane["id"]
    )[0]
    status, out, err = cli("request", "respond", str(pk), "accept", env=stack.env)
    assert status == 5, (out, err)
    assert "by timeout" in err["error"]["message"]
    answered = stack.query(
        "select params from lanes_laneevent where thread_id = ?"
        " and method = 'dispatch/approval/answered'",
        lane["id"],
    )
    assert len(answered) == 1 and '"answeredBy": "timeout"' in answered[0][0]


def test_it_follows_the_lane_setting_over_the_policy(stack: Stack) -> None:
    stack.write_config('[policy]\napprovals = "decline"\n')
    held_lane = new_lane(stack, "lane-hold", "--approvals", "hold")
    accepting = new_lane(stack, "lane-accept", "--approvals", "accept")
    default = new_lane(stack, "lane-default")
    for lane in (accepting, default):
        turn_completed(stack, lane["ref"], f"{lane['handle']} answered at once")
    assert [r["result"] for r in replies_to_approvals(stack, accepting["id"])] == [
        {"decision": "accept"}
    ]
    assert [r["result"] for r in replies_to_approvals(stack, default["id"])] == [
        {"decision": "decline"}
    ]
    request = wait_held(stack, held_lane)
    assert [r["id"] for r in held(stack)] == [request["id"]]
    status, out, err = cli(
        "request", "respond", str(request["id"]), "decline", env=stack.env
    )
    assert status == 0, err
    wait_for(
        lambda: stack.lane_state(held_lane["ref"])["latest_turn_status"] == "completed",
        timeout=30,
        what="the held lane's turn to complete",
    )


def test_it_refuses_bad_answers_and_bad_settings(stack: Stack) -> None:
    status, out, err = cli("request", "respond", "999999", "accept", env=stack.env)
    assert status == 4, (out, err)
    status, out, err = cli("request", "respond", "1", "maybe", env=stack.env)
    assert status == 2, (out, err)
    assert "decision" in err["error"]["message"]
    status, out, err = cli(
        "new", "--name", "never-made", "--approvals", "sometimes", env=stack.env
    )
    assert status == 2, (out, err)
    assert "approvals" in err["error"]["message"]
    status, out, err = cli("get", "@never-made", env=stack.env)
    assert status == 4, (out, err)
    # An approval answered by policy was never held: nothing to respond to.
    stack.write_config('[policy]\napprovals = "decline"\n')
    lane = new_lane(stack, "not-held")
    wait_for(
        lambda: stack.lane_state(lane["ref"])["latest_turn_status"] == "completed",
        timeout=30,
    )
    (pk,) = stack.query(
        "select id from lanes_serverrequest where thread_id = ?", lane["id"]
    )[0]
    status, out, err = cli("request", "respond", str(pk), "accept", env=stack.env)
    assert status == 2, (out, err)
    assert "not held" in err["error"]["message"]


def test_it_expires_held_requests_when_the_worker_restarts(stack: Stack) -> None:
    lane = new_lane(stack, "hold-restart")
    request = wait_held(stack, lane)
    stack.kill("worker")
    stack.start_worker()
    wait_for(
        lambda: held(stack, lane["ref"]) == [],
        timeout=30,
        what="the held request to expire",
    )
    status, out, err = cli(
        "request", "respond", str(request["id"]), "accept", env=stack.env
    )
    assert status == 5, (out, err)
    assert "expired" in err["error"]["message"]
