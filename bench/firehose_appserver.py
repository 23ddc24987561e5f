#!/usr/bin/env python3
"""A stand-in `codex app-server` that answers the basics and floods notifications.

For bench/bench_journal.py (b): the worker spawns it like codex. `turn/start`
is answered at once, then $FIREHOSE_EVENTS realistic notifications for that
thread (bench_journal.turn_notifications, interleaved turns) are written to
stdout as fast as the pipe takes them. The times of the first and last write
go to $FIREHOSE_STAMP as JSON. Every other method answers `{}` (or a plausible
object); stdlib only.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_journal import turn_notifications  # noqa: E402

VERSION = "0.169.0"
CHUNK_LINES = 500
LOCK = threading.Lock()  # replies and the flood share stdout, whole lines only


def write(message: dict[str, Any]) -> None:
    with LOCK:
        sys.stdout.buffer.write((json.dumps(message) + "\n").encode())
        sys.stdout.buffer.flush()


def flood(thread_id: str, total: int, stamp: str | None) -> None:
    rng = random.Random(11)
    lines: list[str] = []
    turn = 0
    while len(lines) < total:
        turn += 1
        for note in turn_notifications(rng, thread_id, turn):
            lines.append(json.dumps(note))
            if len(lines) >= total:
                break
    chunks = [
        ("\n".join(lines[i : i + CHUNK_LINES]) + "\n").encode()
        for i in range(0, len(lines), CHUNK_LINES)
    ]
    out = sys.stdout.buffer
    first = time.time()
    for chunk in chunks:
        with LOCK:
            out.write(chunk)
            out.flush()
    last = time.time()
    if stamp:
        Path(stamp).write_text(json.dumps({"first_write": first, "last_write": last}))


def answer(method: str, params: dict[str, Any]) -> Any:
    if method == "initialize":
        return {
            "userAgent": f"firehose/{VERSION} (bench)",
            "codexHome": "",
            "platformFamily": "unix",
            "platformOs": "linux",
        }
    if method == "thread/start":
        thread_id = str(uuid.uuid4())
        thread: dict[str, Any] = {
            "id": thread_id,
            "cwd": params.get("cwd") or "/",
            "status": {"type": "idle"},
            "source": "vscode",
            "preview": "",
            "name": None,
            "turns": [],
        }
        return {
            "thread": thread,
            "model": "mock-model",
            "modelProvider": "mock",
            "cwd": thread["cwd"],
        }
    if method == "turn/start":
        turn: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "items": [],
            "status": "inProgress",
            "error": None,
        }
        return {"turn": turn}
    if method in (
        "thread/turns/list",
        "thread/items/list",
        "thread/list",
        "model/list",
    ):
        return {"data": [], "nextCursor": None}
    return {}


def main() -> int:
    total = int(os.environ.get("FIREHOSE_EVENTS", "100000"))
    stamp = os.environ.get("FIREHOSE_STAMP")
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "id" not in message or "method" not in message:
            continue
        method, params = message["method"], message.get("params") or {}
        write({"id": message["id"], "result": answer(method, params)})
        if method == "turn/start":
            threading.Thread(
                target=flood, args=(params["threadId"], total, stamp), daemon=True
            ).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
