"""Scriptable mock of the OpenAI Responses API for driving a real codex offline.

Stdlib only, so it can run as a bare subprocess (``python mock_responses.py
--port 0 --port-file F``) as well as in-process (``MockResponsesServer``).
It binds 127.0.0.1 only: codex talks to it through a custom model provider
whose ``base_url`` is ``http://127.0.0.1:PORT/v1``.

Each ``POST /v1/responses`` consumes one script from a FIFO queue and streams
the SSE sequence codex 0.169 accepts. Scripts::

    {"kind": "message", "text": "..", "chunks": 4, "delay": 0}
    {"kind": "shell", "command": "echo hi" | ["echo", "hi"]}
    {"kind": "function_call", "name": "..", "arguments": {..}, "namespace": ".."}
    {"kind": "apply_patch", "patch": "*** Begin Patch ..."}
    {"kind": "error", "status": 500}
    {"kind": "failed"}
    {"kind": "hang", "seconds": 60}

With an empty queue the reply is derived from the request: a trailing tool
output (with a ``call_id``) gets a final message so tool loops end; otherwise
directives in the last user text apply (``[[slow:SEC]]``, ``[[shell:CMD]]``,
``[[fail]]``, plus ``[[error:STATUS]]`` and ``[[hang]]``), else the reply is
``mock reply #N to: <last user text>``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import re
import select
import shlex
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "MockResponsesClient",
    "MockResponsesServer",
    "last_input_item",
    "last_user_text",
    "main",
    "tool_output_text",
]

Script = dict[str, Any]

HOST = "127.0.0.1"
HANG_SECONDS = 60.0
SLOW_CHUNKS = 20
TOOL_OUTPUT_PREVIEW = 200
USAGE: dict[str, Any] = {
    "input_tokens": 100,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 10,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 110,
}

_SLOW_RE = re.compile(r"\[\[slow:([0-9]*\.?[0-9]+)\]\]")
_SHELL_RE = re.compile(r"\[\[shell:(.+?)\]\]", re.DOTALL)
_ERROR_RE = re.compile(r"\[\[error:(\d{3})\]\]")
_TOOL_OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
KINDS = frozenset(
    {"message", "shell", "function_call", "apply_patch", "error", "failed", "hang"}
)


# --------------------------------------------------------------------------
# Request inspection helpers (also handy for tests asserting on bodies)
# --------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """Join the text parts of a message ``content`` (string or part list)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        str(part.get("text", ""))
        for part in content
        if isinstance(part, Mapping)
        and part.get("type") in ("input_text", "output_text", "text")
    ]
    return "".join(texts)


def last_user_text(items: Iterable[Any] | None) -> str:
    """Text of the last ``role: user`` message item in a Responses input list."""
    text = ""
    for item in items or ():
        if not isinstance(item, Mapping) or item.get("role") != "user":
            continue
        if item.get("type", "message") != "message":
            continue
        text = _content_text(item.get("content"))
    return text


def last_input_item(body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    items = (body or {}).get("input")
    if isinstance(items, list) and items and isinstance(items[-1], dict):
        return items[-1]
    return None


def tool_output_text(item: Mapping[str, Any]) -> str:
    """Text of a function_call_output/custom_tool_call_output ``output``."""
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(p.get("text", "")) for p in output if isinstance(p, Mapping))
    if isinstance(output, Mapping):  # legacy {"content": .., "success": ..}
        return str(output.get("content", ""))
    return "" if output is None else json.dumps(output)


def _is_tool_result(item: Mapping[str, Any] | None) -> bool:
    # Goal continuations and untrusted additionalContext inject
    # function_call_output items *without* call_id; those are context, not
    # the answer to one of our calls, so they must not end a "tool loop".
    return bool(item and item.get("type") in _TOOL_OUTPUT_TYPES and item.get("call_id"))


def _tool_names(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
            names.add(tool["name"])
    return names


def _split(text: str, chunks: int) -> list[str]:
    """Split ``text`` into at most ``chunks`` non-empty, near-equal pieces."""
    n = max(1, min(int(chunks), len(text)))
    if not text:
        return []
    size, extra = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(text[pos : pos + step])
        pos += step
    return out


# --------------------------------------------------------------------------
# Shared state
# --------------------------------------------------------------------------


class _State:
    """Queue, captured requests and counters, shared by handler threads."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.scripts: deque[Script] = deque()
        self.records: list[dict[str, Any]] = []
        self.counter = 0
        self.stopping = threading.Event()

    def queue(self, scripts: Iterable[Script]) -> int:
        new = [dict(s) for s in scripts]
        for script in new:
            # Reject bad scripts here, where the caller sees the error, rather
            # than mid-stream inside codex's request.
            if script.get("kind") not in KINDS:
                raise ValueError(f"unknown mock script kind: {script!r}")
            if script["kind"] == "function_call" and not script.get("name"):
                raise ValueError(f"function_call script needs a name: {script!r}")
        with self.cond:
            self.scripts.extend(new)
            return len(self.scripts)

    def reset(self, counters: bool = False) -> None:
        with self.cond:
            self.scripts.clear()
            self.records.clear()
            if counters:
                self.counter = 0
            self.cond.notify_all()

    def next_number(self) -> int:
        with self.cond:
            self.counter += 1
            return self.counter

    def pop_script(self) -> Script | None:
        with self.cond:
            return self.scripts.popleft() if self.scripts else None

    def add_record(self, record: dict[str, Any]) -> None:
        with self.cond:
            record["index"] = len(self.records)
            self.records.append(record)
            self.cond.notify_all()

    def update_record(self, record: dict[str, Any], **changes: Any) -> None:
        with self.cond:
            record.update(changes)
            self.cond.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        with self.cond:
            return copy.deepcopy(self.records)

    def wait_for(self, n: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.records) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"mock saw {len(self.records)} requests, wanted {n}"
                    )
                self.cond.wait(remaining)
            return copy.deepcopy(self.records)

    def pending(self) -> int:
        with self.cond:
            return len(self.scripts)

    def count(self) -> int:
        with self.cond:
            return len(self.records)


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------


class _Disconnected(Exception):
    """The client went away mid-stream (steer/interrupt abort the request)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # Codex logs nothing useful here; per-request access logs only add noise.
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:
            super().log_message(format, *args)

    @property
    def state(self) -> _State:
        return self.server.state

    # ---- plumbing -------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            raw = bytes(data)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def _json_body(self) -> Any:
        raw = self._read_body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _send_json(self, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        # No Content-Length: the body ends when we close the connection.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.flush()

    def _event(self, event_type: str, payload: dict[str, Any]) -> None:
        frame = {"type": event_type, **payload}
        data = f"event: {event_type}\ndata: {json.dumps(frame)}\n\n".encode()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (ConnectionError, OSError) as exc:
            raise _Disconnected from exc

    def _client_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True as soon as the peer closes."""
        deadline = time.monotonic() + max(0.0, timeout)
        sock: socket.socket = self.connection
        while True:
            if self.state.stopping.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                ready, _, _ = select.select([sock], [], [], min(remaining, 0.25))
                if ready and not sock.recv(1, socket.MSG_PEEK):
                    return True
            except (ConnectionError, OSError, ValueError):
                return True
            if ready:  # unexpected extra bytes: avoid a busy loop
                time.sleep(min(remaining, 0.05))

    # ---- routing --------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/_mock/health":
            self._send_json(
                {
                    "ok": True,
                    "pending": self.state.pending(),
                    "requests": self.state.count(),
                }
            )
        elif path == "/_mock/requests":
            self._send_json(self.state.snapshot())
        elif path == "/v1/models":
            self._record(None)
            self._send_json({"models": [], "data": []})
        else:
            self._send_json({"error": f"no route GET {path}"}, 404)

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self._json_body()
        if path == "/_mock/queue":
            scripts = body if isinstance(body, list) else [body]
            try:
                pending = self.state.queue(scripts)
            except (ValueError, TypeError, AttributeError) as exc:
                self._send_json({"error": str(exc)}, 400)
                return
            self._send_json({"queued": len(scripts), "pending": pending})
        elif path == "/_mock/reset":
            counters = bool(isinstance(body, dict) and body.get("counters"))
            self.state.reset(counters=counters)
            self._send_json({"ok": True})
        elif path == "/v1/responses/compact":
            self._compact(body)
        elif path == "/v1/responses":
            self._responses(body)
        else:
            self._send_json({"error": f"no route POST {path}"}, 404)

    def _record(self, body: Any, **extra: Any) -> dict[str, Any]:
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "time": time.time(),
            **extra,
        }
        self.state.add_record(record)
        return record

    # ---- /v1/responses ----------------------------------------------------

    def _compact(self, body: Any) -> None:
        n = self.state.next_number()
        self._record(body, number=n, script={"kind": "compact"})
        text = f"mock compaction summary #{n}"
        self._send_json(
            {
                "output": [
                    {
                        "type": "message",
                        "id": f"msg_mock_{n}",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text}],
                    }
                ],
                "usage": USAGE,
            }
        )

    def _responses(self, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        n = self.state.next_number()
        script = self.state.pop_script() or self._default_script(body, n)
        record = self._record(body, number=n, script=script, disconnected=False)
        try:
            self._play(script, body, n)
        except (_Disconnected, ConnectionError):
            self.close_connection = True
            self.state.update_record(record, disconnected=True)

    def _default_script(self, body: dict[str, Any], n: int) -> Script:
        last = last_input_item(body)
        if last is not None and _is_tool_result(last):
            preview = tool_output_text(last)[:TOOL_OUTPUT_PREVIEW]
            return {"kind": "message", "text": f"tool output received: {preview}"}
        text = last_user_text(body.get("input"))
        if m := _SLOW_RE.search(text):
            return {
                "kind": "message",
                "text": f"mock reply #{n} to: {text}",
                "chunks": SLOW_CHUNKS,
                "delay": float(m.group(1)),
            }
        if m := _SHELL_RE.search(text):
            return {"kind": "shell", "command": m.group(1).strip()}
        if "[[fail]]" in text:
            return {"kind": "failed"}
        if m := _ERROR_RE.search(text):
            return {"kind": "error", "status": int(m.group(1))}
        if "[[hang]]" in text:
            return {"kind": "hang"}
        return {"kind": "message", "text": f"mock reply #{n} to: {text}"}

    def _play(self, script: Script, body: dict[str, Any], n: int) -> None:
        kind = script.get("kind")
        if kind == "error":
            self._error(script)
            return
        if kind == "hang":
            self._start_sse()
            if self._client_gone(float(script.get("seconds", HANG_SECONDS))):
                raise _Disconnected
            return
        resp_id = f"resp_mock_{n}"
        self._start_sse()
        self._event(
            "response.created",
            {
                "response": {
                    "id": resp_id,
                    "object": "response",
                    "created_at": int(time.time()),
                    "status": "in_progress",
                    "model": body.get("model"),
                    "output": [],
                }
            },
        )
        if kind == "failed":
            message = str(script.get("message", "mock failure"))
            self._event(
                "response.failed",
                {
                    "response": {
                        "id": resp_id,
                        "object": "response",
                        "status": "failed",
                        "error": {"code": "server_error", "message": message},
                    }
                },
            )
            return
        if kind == "message":
            text = script.get("text")
            if text is None:
                text = f"mock reply #{n} to: {last_user_text(body.get('input'))}"
            item = self._message(
                str(text),
                n,
                int(script.get("chunks", 4)),
                float(script.get("delay", 0)),
            )
        elif kind in ("shell", "function_call", "apply_patch"):
            item = self._tool_call(script, body, n)
        else:
            raise ValueError(f"unknown mock script kind {kind!r}")
        self._event(
            "response.completed",
            {
                "response": {
                    "id": resp_id,
                    "object": "response",
                    "status": "completed",
                    "output": [item],
                    "usage": script.get("usage", USAGE),
                }
            },
        )

    def _error(self, script: Script) -> None:
        status = int(script.get("status", 500))
        message = str(script.get("message", f"mock error {status}"))
        self._send_json(
            {"error": {"message": message, "type": "server_error", "code": None}},
            status,
        )

    def _message(self, text: str, n: int, chunks: int, delay: float) -> dict[str, Any]:
        msg_id = f"msg_mock_{n}"
        where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
        self._event(
            "response.output_item.added",
            {
                "output_index": 0,
                "item": {
                    "type": "message",
                    "id": msg_id,
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                },
            },
        )
        self._event(
            "response.content_part.added",
            {**where, "part": {"type": "output_text", "text": ""}},
        )
        for i, piece in enumerate(_split(text, chunks)):
            if i and delay > 0 and self._client_gone(delay):
                raise _Disconnected
            self._event("response.output_text.delta", {**where, "delta": piece})
        self._event("response.output_text.done", {**where, "text": text})
        item = {
            "type": "message",
            "id": msg_id,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        self._event("response.output_item.done", {"output_index": 0, "item": item})
        return item

    def _tool_call(
        self, script: Script, body: dict[str, Any], n: int
    ) -> dict[str, Any]:
        call_id = f"call_mock_{n}"
        kind = script["kind"]
        item: dict[str, Any]
        if kind == "apply_patch":
            item = {
                "type": "custom_tool_call",
                "id": f"ctc_mock_{n}",
                "call_id": call_id,
                "name": "apply_patch",
                "input": str(script.get("patch", "")),
            }
        else:
            if kind == "shell":
                name, arguments = _shell_call(script, body)
            else:
                name, arguments = str(script["name"]), script.get("arguments", {})
            item = {
                "type": "function_call",
                "id": f"fc_mock_{n}",
                "call_id": call_id,
                "name": name,
                "arguments": (
                    arguments if isinstance(arguments, str) else json.dumps(arguments)
                ),
            }
            if script.get("namespace"):
                item["namespace"] = script["namespace"]
        self._event(
            "response.output_item.added",
            {"output_index": 0, "item": {**item, "status": "in_progress"}},
        )
        done = {**item, "status": "completed"}
        self._event("response.output_item.done", {"output_index": 0, "item": done})
        return done


def _shell_call(script: Script, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Shape a shell command for whichever shell tool the request offers."""
    command = script.get("command", "")
    argv = command if isinstance(command, list) else ["bash", "-lc", str(command)]
    as_text = shlex.join(command) if isinstance(command, list) else str(command)
    tools = _tool_names(body)
    extra = dict(script.get("arguments") or {})
    if "exec_command" in tools or not tools & {"shell_command", "shell"}:
        return "exec_command", {"cmd": as_text, **extra}
    if "shell_command" in tools:
        return "shell_command", {"command": as_text, **extra}
    return "shell", {"command": argv, **extra}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, state: _State, verbose: bool = False) -> None:
        self.state = state
        self.verbose = verbose
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Steer and interrupt drop connections mid-stream; that is expected
        # traffic, not an error worth a traceback on stderr.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, _Disconnected, TimeoutError)):
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


class MockResponsesServer:
    """In-process mock; ``start()`` binds 127.0.0.1 (port 0 = any free port)."""

    def __init__(self, port: int = 0, *, verbose: bool = False) -> None:
        self._requested_port = port
        self._verbose = verbose
        self._state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> MockResponsesServer:
        if self._server is not None:
            return self
        self._state.stopping.clear()
        self._server = _Server(self._requested_port, self._state, self._verbose)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"mock-responses-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._state.stopping.set()  # releases hanging/slow streams
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MockResponsesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("mock server is not running")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # scripting and inspection
    def queue(self, *scripts: Script) -> int:
        """Append scripts (one per /responses call); returns the queue length."""
        return self._state.queue(scripts)

    def reset(self, *, counters: bool = False) -> None:
        """Drop queued scripts and captured requests.

        The reply counter keeps counting unless ``counters=True`` so that item
        ids (``msg_mock_N``) stay unique within a codex thread across resets.
        """
        self._state.reset(counters=counters)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Captured /v1 requests in arrival order (optionally one path only)."""
        records = self._state.snapshot()
        return [r for r in records if path is None or r["path"] == path]

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` requests arrived; TimeoutError otherwise."""
        return self._state.wait_for(n, timeout)

    def pending(self) -> int:
        return self._state.pending()


class MockResponsesClient:
    """Scripts a mock running in another process through /_mock/*."""

    def __init__(self, base: str, *, timeout: float = 10.0) -> None:
        base = base.rstrip("/")
        self.root_url = base.removesuffix("/v1")
        self.base_url = f"{self.root_url}/v1"
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            f"{self.root_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read() or b"null")

    def queue(self, *scripts: Script) -> int:
        return int(self._call("POST", "/_mock/queue", list(scripts))["pending"])

    def reset(self, *, counters: bool = False) -> None:
        self._call("POST", "/_mock/reset", {"counters": counters})

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        records = self._call("GET", "/_mock/requests")
        return [r for r in records if path is None or r["path"] == path]

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_mock/health"))

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            records = self.requests()
            if len(records) >= n:
                return records
            if time.monotonic() >= deadline:
                raise TimeoutError(f"mock saw {len(records)} requests, wanted {n}")
            time.sleep(0.05)


# --------------------------------------------------------------------------
# Process entry point
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="written once listening")
    parser.add_argument("--verbose", action="store_true", help="access log")
    args = parser.parse_args(argv)

    server = MockResponsesServer(args.port, verbose=args.verbose).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    if args.port_file:
        # Write then rename so a watcher never reads a half-written port.
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(f"{server.port}\n")
        tmp.replace(args.port_file)
    print(f"mock responses listening on {server.base_url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
