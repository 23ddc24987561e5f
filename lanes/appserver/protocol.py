"""What the Codex app-server's messages mean: one place for the protocol's words.

A library module: no Django, no models. Method names, status objects and
error texts of `codex app-server` are read here and nowhere else.
"""

from __future__ import annotations

from typing import Any


def thread_status(thread: dict[str, Any]) -> str:
    """A Codex ThreadStatus object as one of dispatch's status words."""
    status = thread.get("status")
    kind = status.get("type") if isinstance(status, dict) else status
    if kind == "active":
        flags = (status.get("activeFlags") if isinstance(status, dict) else None) or []
        return "waiting_approval" if "waitingOnApproval" in flags else "busy"
    return {
        "idle": "idle",
        "notLoaded": "not_loaded",
        "systemError": "error",
    }.get(str(kind), "unknown")


def thread_source(thread: dict[str, Any]) -> str:
    source = thread.get("source")
    if isinstance(source, dict) and source:
        # {"custom": "x"} or {"subAgent": {...}}
        key, value = next(iter(source.items()))
        return f"{key}:{value}" if isinstance(value, str) else str(key)
    return str(source or "unknown")
