"""send modes on slow turns: steer, queue (order, one per turn), interject, stop.

A prompt with `[[slow:SEC]]` makes the fake app-server stream its reply as
20 deltas SEC apart, so that turn runs long enough to be steered, queued
behind, interrupted and stopped, while other turns finish at once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.lanes.conftest import Stack, cli, wait_for

SLOW = "[[slow:1]]"  # about 20 s: each test ends its slow turns itself


@pytest.fixture(scope="module")
def slow(stack: Stack) -> dict[str, Any]:
    status, out, err = cli("new", "--name", "slow", "--no-send", env=stack.env)
    assert status == 0, err
    return out


def turn_starts(stack: Stack, thread_id: str) -> list[dict[str, Any]]:
    return [
        r["params"]
        for r in stack.received("turn/start")
        if r["params"]["threadId"] == thread_id
    ]


def texts(requests: list[dict[str, Any]]) -> list[str]:
    return [r["input"][0]["text"] for r in requests]


def idle(stack: Stack, ref: str) -> bool:
    state = stack.lane_state(ref)
    return state["status"] == "idle" and not state["active_turn_id"]


def queue_statuses(stack: Stack, ref: str) -> list[str]:
    rows = stack.query(
        "select q.status from lanes_queuedmessage q join lanes_lane l "
        "on q.lane_id = l.id where l.ref = ? order by q.id",
        ref,
    )
    return [row[0] for row in rows]


def send(stack: Stack, ref: str, text: str, *flags: str) -> tuple[int, Any, Any]:
    return cli("send", ref, text, *flags, env=stack.env)


def test_it_rejects_more_than_one_mode_and_steers_without_a_turn(
    stack: Stack, slow: dict[str, Any]
) -> None:
    status, out, err = send(stack, slow["ref"], "x", "--steer", "--queue")
    assert status == 2, (out, err)
    assert "choose exactly one" in err["error"]["message"]
    status, out, err = send(stack, slow["ref"], "x", "--steer")
    assert status == 2, (out, err)
    assert "no active turn" in err["error"]["message"]


def test_it_delivers_queued_messages_in_order_one_per_turn(
    stack: Stack, slow: dict[str, Any]
) -> None:
    ref, thread_id = slow["ref"], slow["id"]
    status, first, err = send(stack, ref, f"long task {SLOW}")
    assert status == 0, err
    acks = []
    for text in ("q1", "q2", "q3"):
        status, out, err = send(stack, ref, text, "--queue")
        assert status == 0, err
        acks.append(out)
    assert [a["op"] for a in acks] == ["queue"] * 3
    assert acks[0]["detail"].startswith("queued message ")
    assert acks[-1]["detail"].endswith("pending=3")  # all behind the slow turn
    # A steer without the directive is answered at once: the turn completes.
    status, out, err = send(stack, ref, "wrap up", "--steer")
    assert status == 0, err
    assert out["op"] == "steer" and out["turn_id"] == first["turn_id"]

    wait_for(lambda: queue_statuses(stack, ref) == ["sent"] * 3, timeout=30)
    wait_for(lambda: idle(stack, ref), timeout=15)
    starts = turn_starts(stack, thread_id)
    assert texts(starts) == [f"long task {SLOW}", "q1", "q2", "q3"]
    assert all(s.get("clientUserMessageId") for s in starts[1:])

    # One turn per queued message: no message became a steer of another.
    status, out, err = cli("tail", ref, "--limit", "50", env=stack.env)
    assert status == 0, err
    users = [
        (i["text"], i["turn_id"]) for i in out["items"] if i["type"] == "userMessage"
    ]
    assert [u[0] for u in users] == [f"long task {SLOW}", "wrap up", "q1", "q2", "q3"]
    assert users[0][1] == users[1][1] == first["turn_id"]
    assert len({u[1] for u in users}) == 4


def test_it_steers_interjects_stops_and_holds_the_queue_after_a_stop(
    stack: Stack, slow: dict[str, Any]
) -> None:
    ref, thread_id = slow["ref"], slow["id"]
    status, first, err = send(stack, ref, f"wander off {SLOW}")
    assert status == 0, err
    status, out, err = send(stack, ref, f"also this {SLOW}", "--steer")
    assert status == 0, err
    assert out["op"] == "steer" and out["turn_id"] == first["turn_id"]
    assert (
        stack.received("turn/steer")[-1]["params"]["expectedTurnId"] == first["turn_id"]
    )

    status, out, err = send(stack, ref, f"change course {SLOW}", "--interject")
    assert status == 0, err
    assert out["op"] == "interject" and out["turn_id"] != first["turn_id"]
    interrupt = stack.received("turn/interrupt")[-1]["params"]
    assert interrupt == {"threadId": thread_id, "turnId": first["turn_id"]}
    assert texts(turn_starts(stack, thread_id))[-1] == f"change course {SLOW}"

    status, stopped, err = cli("stop", "--lane", ref, env=stack.env)  # seed form
    assert status == 0, err
    assert stopped["op"] == "stop" and stopped["turn_id"] == out["turn_id"]
    wait_for(lambda: stack.lane_state(ref)["latest_turn_status"] == "interrupted")

    # A stopped turn holds the queue until a turn succeeds.
    status, out, err = send(stack, ref, "held back", "--queue")
    assert status == 0, err
    status, lane, err = cli("get", ref, env=stack.env)
    assert status == 0, err
    assert lane["latest_turn"]["status"] == "interrupted"
    assert lane["queue"]["pending"] == 1
    assert "held back" not in texts(turn_starts(stack, thread_id))

    status, out, err = send(stack, ref, "carry on")
    assert status == 0, err
    wait_for(lambda: queue_statuses(stack, ref)[-1] == "sent", timeout=30)
    assert texts(turn_starts(stack, thread_id))[-2:] == ["carry on", "held back"]

    wait_for(lambda: idle(stack, ref), timeout=15)
    status, out, err = cli("stop", ref, env=stack.env)
    assert status == 2, (out, err)
