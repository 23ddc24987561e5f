"""The worker's announcement of each committed journal batch on the bus.

Web processes keep one hub subscribed to the journal bus (lanes.journal.bus,
lanes.realtime.hub) and fan out to their sockets in memory, so frames are
encoded once here, exactly as every socket sends them.
"""

from __future__ import annotations

import logging
from typing import Any

from lanes.journal.bus import journal_announce
from lanes.journal.reader import frame_text

log = logging.getLogger("dispatch.worker")

# Frames above this size go out as a seq range; watchers read them from the DB.
FRAME_BYTES_LIMIT = 256 * 1024


async def journal_publish(frames: list[tuple[str, dict[str, Any]]]) -> None:
    """One message part for every lane in the batch, split past the limit."""
    by_thread: dict[str, list[tuple[int, str]]] = {}
    for thread_id, frame in frames:
        by_thread.setdefault(thread_id, []).append((frame["seq"], frame_text(frame)))
    parts: list[dict[str, Any]] = []
    size = 0
    for thread_id, rows in by_thread.items():
        part: dict[str, Any] = {
            "thread_id": thread_id,
            "first_seq": rows[0][0],
            "last_seq": rows[-1][0],
        }
        encoded = sum(len(text) for _seq, text in rows)
        if encoded <= FRAME_BYTES_LIMIT:
            part["texts"] = [text for _seq, text in rows]
            size += encoded
        parts.append(part)
        if size > FRAME_BYTES_LIMIT:
            await send_parts(parts)
            parts, size = [], 0
    if parts:
        await send_parts(parts)


async def send_parts(parts: list[dict[str, Any]]) -> None:
    try:
        await journal_announce(parts)
    except Exception as exc:  # watchers refill gaps from the journal
        log.warning("announcing a journal batch failed: %s", exc)
