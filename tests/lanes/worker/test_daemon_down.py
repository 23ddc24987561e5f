"""Sends while the worker is down, on the fake and the real app-server.

A send refused because nothing could take it (no worker) never started a
turn: the lane's latest turn, status and queue are left exactly as they
were, and a message queued meanwhile goes out when the worker is back,
without another send.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.support.mock_responses import MockResponsesServer, last_user_text
from tests.support.stack import Stack, wait_for


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def test_it_leaves_the_lane_alone_when_a_send_finds_no_worker(
    stack: Stack, mock: MockResponsesServer
) -> None:
    lane = stack.cli_ok("new", "--name", "offline", "--text", "first")
    done = stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    # What `dispatch down` does to the worker: SIGTERM, a clean exit.
    stack.kill("worker", signal.SIGTERM)

    refused = stack.cli("send", lane["ref"], "while down")
    assert refused.status == 10, refused
    assert refused.error["code"] == "host_unavailable"
    assert "dispatch up" in refused.error["hint"]
    queued = stack.cli_ok("send", lane["ref"], "queued while down", "--queue")
    assert queued["op"] == "queue" and queued["detail"].endswith("pending=1")

    row = stack.lane_row(lane["id"])
    assert row["status"] == "idle"
    assert row["latest_turn_id"] == done["latest_turn_id"]
    assert row["latest_turn_status"] == "completed"
    assert row["latest_error"] == "" and not row["queue_held"]
    got = stack.cli_ok("get", lane["ref"])
    assert got["status"] == "idle" and got["latest_turn"]["status"] == "completed"

    stack.start_worker()
    wait_for(
        lambda: (
            stack.query(
                "select status from lanes_queuedmessage where lane_id = ?", row["id"]
            )
            == [("sent",)]
        ),
        timeout=30,
        what="the queued message delivered after the worker is back",
    )
    after = stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] != done["latest_turn_id"]
            and r["latest_turn_status"] == "completed"
        ),
        timeout=30,
        what="the queued message's turn to complete",
    )
    assert after["status"] == "idle"
    if stack.codex == "real":
        texts = [
            last_user_text(r["body"].get("input"))
            for r in mock.requests("/v1/responses")
        ]
    else:
        texts = [m["params"]["input"][0]["text"] for m in stack.received("turn/start")]
    # The refused send never reached the model; the queued one did, once.
    assert "while down" not in texts
    assert texts.count("queued while down") == 1
