"""Drive the real ``codex app-server`` against the mock Responses server.

These tests pin down the protocol facts the rest of dispatch relies on
(plain turns, steer preempting a stream, inject_items, provider errors),
using a deliberately tiny JSON-lines client so a failure here points at
codex or the mock, not at dispatch's own client.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.codex_env import codex_binary, codex_env, write_codex_home
from tests.support.mock_responses import MockResponsesServer, last_user_text

CODEX = codex_binary()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CODEX is None,
        reason="codex binary not found (set DISPATCH_CODEX_BIN or install "
        "@openai/codex under ~/.cache/dispatch-codex)",
    ),
]

Message = dict[str, Any]


class AppServer:
    """Blocking JSON-lines client for one ``codex app-server`` process."""

    def __init__(self, codex: str, codex_home: Path, stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [codex, "app-server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=codex_env(codex_home),
            cwd=codex_home,
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, queue.Queue[Message]] = {}
        self.events: queue.Queue[Message] = queue.Queue()
        self.seen: list[Message] = []  # every notification, for assertions
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "id" in msg and "method" not in msg:
                with self._lock:
                    waiter = self._pending.pop(msg["id"], None)
                if waiter is not None:
                    waiter.put(msg)
            elif "id" in msg:
                # These tests run with approval "never"; any server request is
                # unexpected, so reject it rather than block the turn.
                self._send(
                    {"id": msg["id"], "error": {"code": -32601, "message": "no"}}
                )
                self.events.put(msg)
            else:
                self.events.put(msg)

    def _send(self, msg: Message) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: Message, timeout: float = 10.0) -> Any:
        msg_id = next(self._ids)
        waiter: queue.Queue[Message] = queue.Queue(maxsize=1)
        with self._lock:
            self._pending[msg_id] = waiter
        self._send({"id": msg_id, "method": method, "params": params})
        try:
            reply = waiter.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no reply to {method} in {timeout}s") from None
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def notify(self, method: str, params: Message | None = None) -> None:
        msg: Message = {"method": method}
        if params is not None:
            msg["params"] = params
        self._send(msg)

    def wait_for(
        self,
        method: str,
        where: Callable[[Message], bool] = lambda params: True,
        timeout: float = 10.0,
    ) -> Message:
        """Next notification ``method`` whose params satisfy ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.events.get(timeout=max(remaining, 0))
            except queue.Empty:
                methods = [m.get("method") for m in self.seen]
                raise TimeoutError(
                    f"no {method} in {timeout}s; saw {methods}"
                ) from None
            self.seen.append(msg)
            params = msg.get("params") or {}
            if msg.get("method") == method and where(params):
                return params

    def close(self) -> None:
        # EOF on stdin is codex's clean shutdown; kill only as a fallback.
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=5)
        finally:
            self._stderr.close()

    # ---- conveniences ---------------------------------------------------

    def initialize(self) -> Message:
        result = self.request(
            "initialize",
            {
                "clientInfo": {"name": "dispatch_e2e", "version": "0.1.0"},
                "capabilities": {"experimentalApi": True},
            },
        )
        self.notify("initialized")
        return result

    def start_thread(self, cwd: Path) -> str:
        result = self.request("thread/start", {"cwd": str(cwd)})
        return str(result["thread"]["id"])

    def start_turn(self, thread_id: str, text: str) -> str:
        result = self.request(
            "turn/start",
            {"threadId": thread_id, "input": [{"type": "text", "text": text}]},
        )
        return str(result["turn"]["id"])

    def wait_turn_completed(self, turn_id: str, timeout: float = 15.0) -> Message:
        params = self.wait_for(
            "turn/completed", lambda p: p["turn"]["id"] == turn_id, timeout
        )
        return dict(params["turn"])

    def agent_messages(self, turn_id: str) -> list[str]:
        return [
            m["params"]["item"]["text"]
            for m in self.seen
            if m.get("method") == "item/completed"
            and m["params"].get("turnId") == turn_id
            and m["params"]["item"]["type"] == "agentMessage"
        ]


@pytest.fixture
def mock() -> Iterator[MockResponsesServer]:
    with MockResponsesServer() as server:
        yield server


@pytest.fixture
def app(tmp_path: Path, mock: MockResponsesServer) -> Iterator[AppServer]:
    assert CODEX is not None
    home = tmp_path / "codex-home"
    write_codex_home(home, base_url=mock.base_url)
    server = AppServer(CODEX, home, tmp_path / "app-server.stderr")
    try:
        server.initialize()
        yield server
    finally:
        server.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def _invalid_config_warnings(app: AppServer) -> list[Message]:
    return [
        m
        for m in app.seen
        if m.get("method") == "configWarning"
        and "Invalid configuration" in json.dumps(m.get("params"))
    ]


def test_it_completes_a_plain_turn_with_the_mock_reply(
    app: AppServer, mock: MockResponsesServer, workdir: Path
) -> None:
    thread_id = app.start_thread(workdir)
    turn_id = app.start_turn(thread_id, "hello there")

    turn = app.wait_turn_completed(turn_id)

    assert turn["status"] == "completed"
    assert app.agent_messages(turn_id) == ["mock reply #1 to: hello there"]
    assert not _invalid_config_warnings(app)
    [request] = mock.requests("/v1/responses")
    assert request["headers"]["authorization"] == "Bearer dummy-key"
    assert request["body"]["model"] == "mock-model"
    assert last_user_text(request["body"]["input"]) == "hello there"


def test_it_preempts_a_slow_stream_when_steered(
    app: AppServer, mock: MockResponsesServer, workdir: Path
) -> None:
    thread_id = app.start_thread(workdir)
    turn_id = app.start_turn(thread_id, "[[slow:0.2]] tell me a long story")
    app.wait_for("item/agentMessage/delta", lambda p: p["turnId"] == turn_id)

    steered = app.request(
        "turn/steer",
        {
            "threadId": thread_id,
            "expectedTurnId": turn_id,
            "input": [{"type": "text", "text": "STEER: talk about bananas"}],
        },
    )
    turn = app.wait_turn_completed(turn_id)

    assert steered["turnId"] == turn_id
    assert turn["status"] == "completed"
    first, second = mock.wait_for_requests(2)
    assert first["disconnected"] is True  # codex aborted the slow stream
    assert last_user_text(second["body"]["input"]) == "STEER: talk about bananas"
    # The partial slow message never completes; only the post-steer reply does.
    assert app.agent_messages(turn_id) == [
        "mock reply #2 to: STEER: talk about bananas"
    ]


def test_it_sends_injected_items_with_the_next_request(
    app: AppServer, mock: MockResponsesServer, workdir: Path
) -> None:
    thread_id = app.start_thread(workdir)
    note = "Project codename is PELICAN-42."
    result = app.request(
        "thread/inject_items",
        {
            "threadId": thread_id,
            "items": [
                {
                    "type": "message",
                    "role": "developer",
                    "content": [{"type": "input_text", "text": note}],
                }
            ],
        },
    )
    assert result == {}
    assert mock.requests() == []  # injection alone never calls the model

    turn_id = app.start_turn(thread_id, "what is the codename?")
    assert app.wait_turn_completed(turn_id)["status"] == "completed"

    [request] = mock.requests("/v1/responses")
    inputs = request["body"]["input"]
    texts = [json.dumps(item) for item in inputs]
    injected = [i for i, text in enumerate(texts) if note in text]
    asked = [i for i, text in enumerate(texts) if "what is the codename?" in text]
    assert injected and asked and injected[0] < asked[-1]
    assert inputs[injected[0]]["role"] == "developer"


def test_it_fails_the_turn_on_an_http_500_without_retrying(
    app: AppServer, mock: MockResponsesServer, workdir: Path
) -> None:
    mock.queue({"kind": "error", "status": 500})
    thread_id = app.start_thread(workdir)
    turn_id = app.start_turn(thread_id, "this will fail")

    turn = app.wait_turn_completed(turn_id)

    assert turn["status"] == "failed"
    assert turn["error"]["codexErrorInfo"] == "internalServerError"
    errors = [m["params"] for m in app.seen if m.get("method") == "error"]
    assert errors and errors[-1]["willRetry"] is False
    assert len(mock.requests("/v1/responses")) == 1  # retries are off


def test_it_ends_the_shell_tool_loop_with_the_tool_output(
    app: AppServer, mock: MockResponsesServer, workdir: Path
) -> None:
    thread_id = app.start_thread(workdir)
    turn_id = app.start_turn(thread_id, "[[shell:echo mock-shell-ok]]")

    turn = app.wait_turn_completed(turn_id, timeout=30)

    assert turn["status"] == "completed"
    commands = [
        m["params"]["item"]
        for m in app.seen
        if m.get("method") == "item/completed"
        and m["params"]["item"]["type"] == "commandExecution"
    ]
    assert commands and "mock-shell-ok" in commands[0]["aggregatedOutput"]
    first, second = mock.requests("/v1/responses")
    assert first["script"]["kind"] == "shell"
    assert second["body"]["input"][-1]["call_id"] == "call_mock_1"
    [reply] = app.agent_messages(turn_id)
    assert reply.startswith("tool output received: ")
    assert "mock-shell-ok" in reply


def test_it_interrupts_a_turn_while_the_model_hangs(
    app: AppServer, mock: MockResponsesServer, workdir: Path
) -> None:
    mock.queue({"kind": "hang"})
    thread_id = app.start_thread(workdir)
    turn_id = app.start_turn(thread_id, "never answered")
    mock.wait_for_requests(1)

    app.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
    turn = app.wait_turn_completed(turn_id)

    assert turn["status"] == "interrupted"
    deadline = time.monotonic() + 5
    while not mock.requests()[0]["disconnected"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mock.requests()[0]["disconnected"] is True
