"""The worker against the fake and the real app-server: same scenarios on both.

Running each scenario on both keeps the fake honest; the real runs drive
`codex app-server` against the mock Responses server.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.support.mock_responses import MockResponsesServer, last_user_text
from tests.support.stack import Stack, pid_alive, wait_for


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def slow_text(text: str) -> str:
    """A message whose reply streams slowly (30 s) on either backend."""
    return f"[[slow:1.5]] {text}"


def sent_texts(stack: Stack, mock: MockResponsesServer) -> list[str]:
    """The user texts the model side received, in order, one per turn start."""
    if stack.codex == "real":
        texts = [
            last_user_text(r["body"].get("input"))
            for r in mock.requests("/v1/responses")
        ]
    else:
        texts = [
            message["params"]["input"][0]["text"]
            for message in stack.received("turn/start")
        ]
    deduped: list[str] = []
    for text in texts:  # a tool loop or steer repeats the last user text
        if not deduped or deduped[-1] != text:
            deduped.append(text)
    return deduped


def test_it_journals_a_turn_with_contiguous_seq(stack: Stack) -> None:
    lane = stack.cli_ok("new", "--name", "alpha", "--text", "hello there")
    assert lane["message_accepted"] is True
    row = stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    assert row["status"] == "idle"
    events = stack.events(lane["id"])
    seqs = [seq for seq, _ in events]
    assert seqs == list(range(1, len(seqs) + 1))
    methods = [m for _, m in events]
    assert "turn/started" in methods and "turn/completed" in methods
    got = stack.cli_ok("get", lane["ref"], "--include-transcript")
    texts = [item["text"] for item in got["transcript"]]
    assert any("hello there" in t for t in texts)
    assert got["latest_turn"]["status"] == "completed"


def test_it_restarts_a_killed_app_server_within_two_seconds(stack: Stack) -> None:
    lane = stack.cli_ok("new", "--name", "beta", "--text", "first")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    old = stack.worker_state()["app_server_pid"]
    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (
            (pid := stack.worker_state().get("app_server_pid"))
            and pid != old
            and stack.worker_state().get("ready")
        ),
        timeout=5,
        what="a new app-server",
    )
    recovered = time.monotonic() - killed_at
    print(f"app-server recovered in {recovered:.3f} s")
    assert recovered < 2.0
    assert not pid_alive(old)
    # The lane was resumed in the new app-server: a send starts a turn.
    ack = stack.cli_ok("send", lane["ref"], "after restart")
    assert ack["op"] == "send"
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")


def test_it_delivers_queued_messages_in_order_across_an_app_server_crash(
    stack: Stack, mock: MockResponsesServer
) -> None:
    lane = stack.cli_ok("new", "--name", "gamma", "--text", slow_text("long one"))
    stack.wait_lane(lane["id"], lambda r: r["status"] == "busy")
    for n in (1, 2, 3):
        ack = stack.cli_ok("send", lane["ref"], f"queued {n}", "--queue")
        assert ack["op"] == "queue" and ack["detail"].endswith(f"pending={n}")
    os.kill(stack.worker_state()["app_server_pid"], signal.SIGKILL)
    with stack.db() as conn:
        wait_for(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM lanes_queuedmessage WHERE status='sent'"
                ).fetchone()[0]
                == 3
            ),
            timeout=30,
            what="three queued messages delivered",
        )
    # "sent" means turn/start was accepted; the model side may see the last
    # one a moment later.
    wait_for(
        lambda: "queued 3" in sent_texts(stack, mock),
        timeout=20,
        what="the third queued message to reach the model",
    )
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    texts = [t for t in sent_texts(stack, mock) if t.startswith("queued")]
    assert texts == ["queued 1", "queued 2", "queued 3"]


def test_it_reconciles_after_the_worker_is_killed(stack: Stack) -> None:
    lane = stack.cli_ok("new", "--name", "delta", "--text", slow_text("long"))
    stack.wait_lane(lane["id"], lambda r: r["status"] == "busy")
    app_server = stack.worker_state()["app_server_pid"]
    stack.kill("worker")
    wait_for(
        lambda: not pid_alive(app_server),
        timeout=5,
        what="the orphaned app-server to exit",
    )
    stack.start_worker()
    row = stack.wait_lane(lane["id"], lambda r: r["status"] == "idle", timeout=10)
    assert row["latest_turn_status"] == "interrupted"
    assert "restarted" in row["latest_error"]
    ack = stack.cli_ok("send", lane["ref"], "still here?")
    assert ack["op"] == "send"
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
