"""A scripted worker for in-process op tests.

Requests still go through the real gateway (`call_worker`), so the
app-server's answers are classified exactly as in production; only the
channel-layer round trip is replaced by handlers per method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lanes.worker import gateway

Handler = Callable[[dict[str, Any]], Any]


class CodexSays(Exception):
    """A JSON-RPC error answer from the scripted app-server."""


class Worker:
    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


def scripted_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    scripted = Worker()

    def round_trip(host: str, message: dict[str, Any], timeout: float) -> Any:
        method, params = message["method"], message["params"]
        scripted.calls.append((method, params))
        handler = scripted.handlers.get(method)
        if handler is None:  # what codex 0.169 answers an unknown method
            text = f"Invalid request: unknown variant `{method}`, expected one of x"
            return {"ok": False, "error": {"code": -32600, "message": text}}
        try:
            return {"ok": True, "result": handler(params)}
        except CodexSays as exc:
            return {"ok": False, "error": {"code": -32600, "message": str(exc)}}

    monkeypatch.setattr(gateway, "require_worker", lambda host: None)
    monkeypatch.setattr(gateway, "_round_trip", round_trip)
    yield scripted


def says(text: str) -> Handler:
    def handler(params: dict[str, Any]) -> Any:
        raise CodexSays(text)

    return handler
