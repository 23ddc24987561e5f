"""Fast checks of the mock Responses server on its own (no codex needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.mock_responses import (
    MockResponsesClient,
    MockResponsesServer,
    last_user_text,
)

MOCK_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "mock_responses.py"


def user(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def tools(*names: str) -> list[dict[str, Any]]:
    return [{"type": "function", "name": n, "parameters": {}} for n in names]


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in frame.splitlines() if ": " in line
        )
        if "event" in fields:
            data = json.loads(fields["data"])
            assert data["type"] == fields["event"]
            events.append((fields["event"], data))
    return events


def post_responses(base_url: str, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    body.setdefault("model", "mock-model")
    body.setdefault("stream", True)
    resp = httpx.post(f"{base_url}/responses", json=body, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    return parse_sse(resp.text)


def final_item(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    [done] = [d for t, d in events if t == "response.output_item.done"]
    return dict(done["item"])


def final_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return str(final_item(events)["content"][0]["text"])


@pytest.fixture
def mock() -> Iterator[MockResponsesServer]:
    with MockResponsesServer() as server:
        yield server


def test_it_streams_the_default_reply_as_the_protocol_sequence(
    mock: MockResponsesServer,
) -> None:
    events = post_responses(mock.base_url, input=[user("hello there")])

    assert [t for t, _ in events] == [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(d["delta"] for t, d in events if t.endswith(".delta"))
    assert deltas == final_text(events) == "mock reply #1 to: hello there"
    assert final_item(events)["id"] == "msg_mock_1"
    assert events[-1][1]["response"]["usage"]["total_tokens"] == 110
    [record] = mock.requests()
    assert record["body"]["input"][0]["content"][0]["text"] == "hello there"
    assert record["path"] == "/v1/responses"


@pytest.mark.parametrize(
    ("offered", "name", "arguments"),
    [
        (("exec_command", "apply_patch"), "exec_command", {"cmd": "ls -la"}),
        (("shell_command",), "shell_command", {"command": "ls -la"}),
        (("shell",), "shell", {"command": ["bash", "-lc", "ls -la"]}),
        ((), "exec_command", {"cmd": "ls -la"}),
    ],
)
def test_it_calls_the_shell_tool_the_request_offers(
    mock: MockResponsesServer,
    offered: tuple[str, ...],
    name: str,
    arguments: dict[str, Any],
) -> None:
    mock.queue({"kind": "shell", "command": "ls -la"})
    events = post_responses(mock.base_url, input=[user("x")], tools=tools(*offered))

    item = final_item(events)
    assert item["type"] == "function_call"
    assert item["name"] == name
    assert item["call_id"] == "call_mock_1"
    assert json.loads(item["arguments"]) == arguments
    assert events[-1][0] == "response.completed"


def test_it_ends_the_shell_loop_once_the_tool_output_comes_back(
    mock: MockResponsesServer,
) -> None:
    first = final_item(
        post_responses(
            mock.base_url, input=[user("[[shell:echo hi]]")], tools=tools("shell")
        )
    )
    assert json.loads(first["arguments"]) == {"command": ["bash", "-lc", "echo hi"]}

    output = {"type": "function_call_output", "call_id": first["call_id"]}
    events = post_responses(
        mock.base_url,
        input=[user("[[shell:echo hi]]"), first, {**output, "output": "hi\n" * 150}],
    )
    assert final_text(events) == "tool output received: " + ("hi\n" * 150)[:200]


def test_it_treats_tool_output_without_a_call_id_as_no_tool_result(
    mock: MockResponsesServer,
) -> None:
    goal = {
        "type": "function_call_output",
        "name": "goal_objective",
        "namespace": "agent",
        "output": "ship it",
    }
    events = post_responses(mock.base_url, input=[user("keep going"), goal])
    assert final_text(events) == "mock reply #1 to: keep going"


def test_it_plays_function_call_patch_chunked_message_and_failed_scripts(
    mock: MockResponsesServer,
) -> None:
    mock.queue(
        {
            "kind": "function_call",
            "name": "lookup",
            "arguments": {"q": 1},
            "namespace": "mcp__kb",
        },
        {"kind": "apply_patch", "patch": "*** Begin Patch\n*** End Patch"},
        {"kind": "message", "text": "abcdef", "chunks": 3},
        {"kind": "failed"},
    )
    call = final_item(post_responses(mock.base_url, input=[]))
    assert (call["name"], call["namespace"]) == ("lookup", "mcp__kb")
    assert json.loads(call["arguments"]) == {"q": 1}

    patch = final_item(post_responses(mock.base_url, input=[]))
    assert patch["type"] == "custom_tool_call"
    assert patch["name"] == "apply_patch"
    assert patch["input"].startswith("*** Begin Patch")

    events = post_responses(mock.base_url, input=[])
    assert [d["delta"] for t, d in events if t.endswith(".delta")] == ["ab", "cd", "ef"]

    events = post_responses(mock.base_url, input=[])
    assert [t for t, _ in events] == ["response.created", "response.failed"]
    assert mock.pending() == 0


def test_it_fails_on_an_error_script_and_the_fail_directive(
    mock: MockResponsesServer,
) -> None:
    mock.queue({"kind": "error", "status": 503})
    resp = httpx.post(f"{mock.base_url}/responses", json={"input": []})
    assert resp.status_code == 503
    assert "error" in resp.json()

    events = post_responses(mock.base_url, input=[user("please [[fail]]")])
    assert events[-1][0] == "response.failed"


def test_it_streams_twenty_spaced_deltas_for_the_slow_directive(
    mock: MockResponsesServer,
) -> None:
    started = time.monotonic()
    events = post_responses(mock.base_url, input=[user("[[slow:0.01]] go")])
    deltas = [d for t, d in events if t.endswith(".delta")]
    assert len(deltas) == 20
    assert time.monotonic() - started >= 19 * 0.01
    assert final_text(events) == "mock reply #1 to: [[slow:0.01]] go"


def test_it_stays_quiet_when_a_client_disconnects_mid_stream(
    mock: MockResponsesServer, capfd: pytest.CaptureFixture[str]
) -> None:
    mock.queue(
        {"kind": "hang"},
        {"kind": "message", "text": "x" * 40, "chunks": 20, "delay": 0.2},
    )
    for _ in range(2):
        with httpx.stream(
            "POST", f"{mock.base_url}/responses", json={"input": []}, timeout=5
        ) as resp:
            assert resp.status_code == 200
    records = mock.requests()
    deadline = time.monotonic() + 3
    while not all(r["disconnected"] for r in records):
        assert time.monotonic() < deadline, records
        time.sleep(0.02)
        records = mock.requests()
    assert "Traceback" not in capfd.readouterr().err


def test_it_validates_queued_scripts_resets_and_waits_for_requests(
    mock: MockResponsesServer,
) -> None:
    with pytest.raises(ValueError):
        mock.queue({"kind": "nope"})
    mock.queue({"kind": "message", "text": "queued"})
    mock.reset()
    assert mock.pending() == 0
    with pytest.raises(TimeoutError):
        mock.wait_for_requests(1, timeout=0.05)
    post_responses(mock.base_url, input=[user("a")])
    assert len(mock.wait_for_requests(1, timeout=1)) == 1
    # Counters survive a plain reset so item ids stay unique per thread.
    mock.reset()
    assert final_item(post_responses(mock.base_url, input=[]))["id"] == "msg_mock_2"
    mock.reset(counters=True)
    assert final_item(post_responses(mock.base_url, input=[]))["id"] == "msg_mock_1"


def test_it_stubs_the_models_and_compact_endpoints(mock: MockResponsesServer) -> None:
    assert httpx.get(f"{mock.base_url}/models").json() == {"models": [], "data": []}
    resp = httpx.post(f"{mock.base_url}/responses/compact", json={"input": []})
    assert resp.status_code == 200
    assert resp.json()["output"][0]["type"] == "message"


def test_it_picks_the_text_of_the_last_user_message() -> None:
    items = [
        user("first"),
        {"type": "message", "role": "developer", "content": "dev"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "a"},
                {"type": "input_image", "image_url": "x"},
                {"type": "input_text", "text": "b"},
            ],
        },
        {"type": "function_call_output", "call_id": "c", "output": "o"},
    ]
    assert last_user_text(items) == "ab"
    assert last_user_text([]) == ""


def test_it_runs_as_a_process_driven_by_the_http_client(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(MOCK_SCRIPT),
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr
            assert time.monotonic() < deadline
            time.sleep(0.02)
        base = f"http://127.0.0.1:{int(port_file.read_text())}/v1"
        client = MockResponsesClient(base)
        assert client.health()["ok"] is True
        assert client.queue({"kind": "message", "text": "over http"}) == 1

        events = post_responses(base, input=[user("hi")])
        assert final_text(events) == "over http"
        [record] = client.wait_for_requests(1, timeout=2)
        assert last_user_text(record["body"]["input"]) == "hi"

        resp = httpx.post(f"{base[:-3]}/_mock/queue", json={"kind": "bogus"})
        assert resp.status_code == 400
        client.reset()
        assert client.requests() == []
        assert client.health()["pending"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None
        assert b"Traceback" not in proc.stderr.read()
