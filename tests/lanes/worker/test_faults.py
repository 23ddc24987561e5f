"""Faults, against the fake and the real codex app-server (mock Responses server).

An app-server `kill -9` while an approval is held or three messages wait in
the queue; the model side failing mid-stream, answering 500, or hanging past
codex's stream timeout. Each ends with every turn closed honestly in the
journal, the queue delivered exactly once, and a lane that still works.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.codex_env import codex_binary
from tests.support.mock_responses import MockResponsesServer, last_user_text
from tests.support.stack import Stack, pid_alive, wait_for

RECOVERY_BOUND_SECONDS = 2.0


def kill_app_server(stack: Stack) -> float:
    """SIGKILL the app-server; seconds until a new one serves."""
    old = stack.worker_state()["app_server_pid"]
    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (
            (state := stack.worker_state()).get("app_server_pid") not in (None, old)
            and state.get("ready")
        ),
        timeout=10,
        what="a new app-server",
    )
    recovered = time.monotonic() - killed_at
    assert not pid_alive(old)
    return recovered


def journal(stack: Stack, thread_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    rows = stack.query(
        "select seq, method, params from lanes_laneevent where thread_id = ?"
        " order by seq",
        thread_id,
    )
    return [(seq, method, json.loads(params)) for seq, method, params in rows]


def assert_contiguous(stack: Stack, thread_id: str) -> None:
    seqs = [seq for seq, _m, _p in journal(stack, thread_id)]
    assert seqs == list(range(1, len(seqs) + 1)), "a journal seq was lost or repeated"


def turn_ends(stack: Stack, thread_id: str, turn_id: str) -> list[str]:
    return [
        p["turn"]["status"]
        for _s, m, p in journal(stack, thread_id)
        if m == "turn/completed" and p["turn"]["id"] == turn_id
    ]


def model_texts(stack: Stack, mock: MockResponsesServer) -> list[str]:
    """The user text of each turn the model side saw, in order."""
    if stack.codex == "real":
        texts = [
            last_user_text(r["body"].get("input"))
            for r in mock.requests("/v1/responses")
        ]
    else:
        texts = [m["params"]["input"][0]["text"] for m in stack.received("turn/start")]
    turns: list[str] = []
    for text in texts:  # a tool loop repeats the last user text
        if not turns or turns[-1] != text:
            turns.append(text)
    return turns


# -- kill -9 of the app-server ------------------------------------------------------


def test_it_recovers_from_an_app_server_kill_during_a_held_approval(
    start_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = start_stack(extra_env={"FAKE_APPSERVER_MODE": "approval"})
    stack.write_config('[policy]\napprovals = "hold"\n')
    target = tmp_path / "never.txt"
    lane = stack.cli_ok(
        "new",
        "--name",
        "held",
        "--cwd",
        str(tmp_path),
        "--approval-policy",
        "untrusted",
        "--sandbox",
        "danger-full-access",
        "--text",
        f"[[shell:touch {target}]]",
    )
    (request,) = wait_for(
        lambda: stack.cli_ok("request", "list", "--lane", lane["ref"])["requests"],
        timeout=60,
        what="the held approval",
    )
    turn_id = stack.lane_row(lane["id"])["active_turn_id"]
    assert turn_id

    recovered = kill_app_server(stack)
    print(f"app-server back in {recovered:.3f} s")
    assert recovered < RECOVERY_BOUND_SECONDS

    stack.wait_lane(lane["id"], lambda r: r["status"] == "idle", timeout=10)
    assert turn_ends(stack, lane["id"], turn_id) == ["interrupted"]
    assert stack.cli_ok("request", "list", "--lane", lane["ref"])["requests"] == []
    late = stack.cli("request", "respond", str(request["id"]), "accept")
    assert late.status == 5 and "expired" in late.error["message"]
    assert not target.exists()
    assert_contiguous(stack, lane["id"])
    # The lane was resumed in the new app-server: it takes a new turn.
    ack = stack.cli_ok("send", lane["ref"], "carry on")
    assert ack["op"] == "send" and ack["turn_id"] != turn_id


def test_it_delivers_three_queued_messages_once_across_an_app_server_kill(
    start_stack: Callable[..., Stack], mock: MockResponsesServer
) -> None:
    stack = start_stack()
    lane = stack.cli_ok("new", "--name", "queued", "--text", "[[slow:1.5]] long one")
    cut = stack.wait_lane(lane["id"], lambda r: r["active_turn_id"], timeout=30)
    for n in (1, 2, 3):
        stack.cli_ok("send", lane["ref"], f"queued {n}", "--queue")

    recovered = kill_app_server(stack)
    assert recovered < RECOVERY_BOUND_SECONDS

    def delivered() -> list[tuple[str, str]]:
        return stack.query(
            "select text, turn_id from lanes_queuedmessage where status = 'sent'"
            " order by id"
        )

    wait_for(lambda: len(delivered()) == 3, timeout=60, what="three deliveries")
    stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] == delivered()[-1][1]
            and r["latest_turn_status"] == "completed"
        ),
        timeout=30,
        what="the last queued turn to complete",
    )
    sent = delivered()
    assert [text for text, _turn in sent] == ["queued 1", "queued 2", "queued 3"]
    assert len({turn for _text, turn in sent}) == 3
    # Exactly once: the model saw each once, the journal says so once each.
    texts = model_texts(stack, mock)
    assert [t for t in texts if t.startswith("queued")] == [t for t, _ in sent]
    events = journal(stack, lane["id"])
    delivered_turns = [
        p["turnId"] for _s, m, p in events if m == "dispatch/message/delivered"
    ]
    assert delivered_turns == [turn for _text, turn in sent]
    # The cut-off turn ended once, never as completed.
    assert turn_ends(stack, lane["id"], cut["active_turn_id"]) == ["interrupted"]
    assert_contiguous(stack, lane["id"])


# -- the model side failing ------------------------------------------------------------


@pytest.fixture
def real_stack(tmp_path: Path, mock: MockResponsesServer) -> Iterator[Stack]:
    """A real-codex stack whose model stream times out after 2 s idle."""
    if codex_binary() is None:
        pytest.skip("codex binary not installed")
    stack = Stack(tmp_path, codex="real", mock_base_url=mock.base_url)
    config = stack.codex_home / "config.toml"
    text = config.read_text()
    assert "stream_idle_timeout_ms = 30000" in text
    config.write_text(
        text.replace("stream_idle_timeout_ms = 30000", "stream_idle_timeout_ms = 2000")
    )
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("directive", "error"),
    [
        ("[[fail]]", "mock failure"),  # response.failed after the stream began
        # Codex words a 500 its own way ("...high demand..."): any message.
        ("[[error:500]]", ""),
        ("[[hang]]", "idle"),  # no byte for longer than the stream timeout
    ],
)
def test_it_fails_the_turn_with_the_error_and_keeps_the_lane_usable(
    real_stack: Stack, mock: MockResponsesServer, directive: str, error: str
) -> None:
    stack = real_stack
    lane = stack.cli_ok("new", "--name", "faulty", "--text", f"{directive} go")
    row = stack.wait_lane(
        lane["id"],
        lambda r: r["latest_turn_status"] not in ("", "started"),
        timeout=60,
        what="the faulty turn to end",
    )
    assert row["latest_turn_status"] == "failed"
    got = stack.cli_ok("get", lane["ref"])
    assert got["status"] == "error"
    assert got["latest_turn"]["error"], got["latest_turn"]
    assert error in got["latest_turn"]["error"].lower(), got["latest_turn"]
    assert turn_ends(stack, lane["id"], row["latest_turn_id"]) == ["failed"]

    stack.cli_ok("send", lane["ref"], "and now?")
    after = stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] != row["latest_turn_id"]
            and r["latest_turn_status"] == "completed"
        ),
        timeout=60,
        what="the next turn to complete",
    )
    assert after["status"] == "idle"
    assert model_texts(stack, mock)[-1] == "and now?"
    assert_contiguous(stack, lane["id"])
