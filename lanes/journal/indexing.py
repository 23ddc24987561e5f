"""Maintaining the item index from journal batches and from sync pages.

The worker calls `index_messages` inside the journal's transaction, so an
event and its index rows commit together. Indexing is best effort there: it
runs in a savepoint and a failure is logged, never allowed to lose the
batch of events. Sync calls `index_items` / `index_turns` with what
`thread/items/list` and `thread/turns/list` return.

Rows are upserts keyed by (thread, item) and (thread, turn), so replaying a
batch, or syncing what the live index already holds, changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from lanes.appserver.protocol import (
    ITEM_COMPLETED,
    ITEM_STARTED,
    TURN_COMPLETED,
    TURN_STARTED,
)
from lanes.journal.eventstore import datetime_adapter
from lanes.journal.lane_state import RECOVERY_KEY
from lanes.models.index import ITEM_ID_MAX, ITEM_TEXT_MAX_CHARS, LaneItem, LaneTurn

log = logging.getLogger("dispatch.index")

# Raw items above this size are replaced by a stub in LaneItem.payload; the
# journal (until pruned) and Codex keep the whole item.
PAYLOAD_MAX_BYTES = 64 * 1024
TEXT_TAIL_CHARS = 4_000
FILES_MAX = 50
FILE_KEYS = ("path", "file", "filePath", "file_path")
ITEM_METHODS = {ITEM_STARTED, ITEM_COMPLETED}
TURN_METHODS = {TURN_STARTED, TURN_COMPLETED}
INDEXED_METHODS = ITEM_METHODS | TURN_METHODS
ROLES = {
    "userMessage": "user",
    "agentMessage": "assistant",
    "reasoning": "assistant",
    "plan": "assistant",
}
TOOL_NAMES = {
    "commandExecution": "shell",
    "fileChange": "apply_patch",
    "webSearch": "web_search",
    "imageView": "view_image",
    "imageGeneration": "image_generation",
}
ITEM_UPDATE_FIELDS = [
    "turn_id",
    "item_type",
    "role",
    "tool",
    "status",
    "text",
    "files",
    "payload",
    "bytes",
    "source",
    "completed_at",
]


@dataclass
class IndexStats:
    items: int = 0
    turns: int = 0


@dataclass(slots=True)
class ItemValues:
    """One LaneItem row to upsert (a model instance costs ~40 us to build)."""

    thread_id: str
    turn_id: str
    item_id: str
    item_type: str
    role: str
    tool: str
    status: str
    text: str
    files: list[str]
    payload: Any
    bytes: int
    source: str
    created_at: datetime
    completed_at: datetime | None


ITEM_COLUMNS = tuple(f.name for f in fields(ItemValues))


# -- item fields ---------------------------------------------------------------


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def bounded_text(text: str) -> str:
    """Keep head and tail: a command's verdict is usually at the end."""
    if len(text) <= ITEM_TEXT_MAX_CHARS:
        return text
    marker = "\n…\n"
    head = ITEM_TEXT_MAX_CHARS - TEXT_TAIL_CHARS - len(marker)
    return text[:head] + marker + text[-TEXT_TAIL_CHARS:]


def content_text(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                out.append(part["text"])
            elif part.get("type") in ("image", "localImage", "input_image"):
                out.append(
                    f"[image {part.get('path') or part.get('url') or ''}]".strip()
                )
    return "\n".join(out)


def tool_of(item: dict[str, Any]) -> str:
    kind = str(item.get("type") or "")
    if kind in TOOL_NAMES:
        return TOOL_NAMES[kind]
    if kind == "mcpToolCall":
        server, tool = item.get("server") or "", item.get("tool") or ""
        return f"{server}/{tool}" if server else str(tool)
    if kind in ("dynamicToolCall", "collabAgentToolCall") or kind.endswith("ToolCall"):
        return str(item.get("tool") or kind)
    return ""


def role_of(item: dict[str, Any], tool: str) -> str:
    kind = str(item.get("type") or "")
    if kind in ROLES:
        return ROLES[kind]
    return "tool" if tool else ""


def text_of(item: dict[str, Any]) -> str:
    """What search matches and history shows for one Codex item."""
    kind = item.get("type")
    parts: list[str] = []
    if kind == "commandExecution":
        parts = [
            str(item.get("command") or ""),
            str(item.get("aggregatedOutput") or ""),
        ]
    elif kind == "fileChange":
        for change in item.get("changes") or []:
            if isinstance(change, dict):
                parts += [str(change.get("path") or ""), str(change.get("diff") or "")]
    elif kind in ("mcpToolCall", "dynamicToolCall", "collabAgentToolCall"):
        parts = [tool_of(item)]
        if item.get("arguments") is not None:
            parts.append(compact_json(item["arguments"]))
        if item.get("prompt"):
            parts.append(str(item["prompt"]))
        result = item.get("result")
        if isinstance(result, dict):
            parts.append(content_text(result.get("content")))
        parts.append(content_text(item.get("contentItems")))
        error = item.get("error")
        if isinstance(error, dict):
            parts.append(str(error.get("message") or ""))
    elif kind == "reasoning":
        parts = [content_text(item.get("summary")), content_text(item.get("content"))]
    elif kind == "webSearch":
        parts = [str(item.get("query") or "")]
    elif kind == "imageView":
        parts = [str(item.get("path") or "")]
    elif isinstance(item.get("text"), str):
        parts = [item["text"]]
    else:
        parts = [content_text(item.get("content"))]
        if item.get("review"):
            parts.append(str(item["review"]))
    return "\n".join(p for p in parts if p)


def files_of(item: Any) -> list[str]:
    """Paths under `path`/`file`/`filePath`/`file_path` keys anywhere in the item."""
    found: list[str] = []
    stack = [item]
    while stack and len(found) < FILES_MAX:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in FILE_KEYS and isinstance(value, str) and value:
                    if value not in found:
                        found.append(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def ms_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def s_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def item_row(
    *,
    thread_id: str,
    turn_id: str,
    item: dict[str, Any],
    source: str,
    seen_at: datetime,
    started_ms: Any = None,
    completed_ms: Any = None,
) -> ItemValues | None:
    item_id = str(item.get("id") or "")
    if not item_id or not thread_id:
        return None
    raw = compact_json(item)
    tool = tool_of(item)
    payload: Any = item
    if len(raw) > PAYLOAD_MAX_BYTES:
        payload = {
            "type": item.get("type"),
            "id": item_id,
            "truncated": True,
            "bytes": len(raw),
        }
    status = item.get("status")
    return ItemValues(
        thread_id=thread_id,
        turn_id=turn_id,
        item_id=item_id[:ITEM_ID_MAX],
        item_type=str(item.get("type") or "unknown")[:64],
        role=role_of(item, tool),
        tool=tool[:200],
        status=str(status)[:32] if isinstance(status, str) else "",
        text=bounded_text(text_of(item)),
        files=files_of(item),
        payload=payload,
        bytes=len(raw.encode()),
        source=source,
        created_at=ms_time(started_ms or item.get("startedAtMs")) or seen_at,
        completed_at=ms_time(completed_ms or item.get("completedAtMs")),
    )


def turn_fields(turn: dict[str, Any]) -> dict[str, Any]:
    error = turn.get("error")
    message = error.get("message", "") if isinstance(error, dict) else str(error or "")
    duration = turn.get("durationMs")
    return {
        "status": str(turn.get("status") or "")[:32],
        "error": message,
        "started_at": s_time(turn.get("startedAt")),
        "completed_at": s_time(turn.get("completedAt")),
        "duration_ms": duration
        if isinstance(duration, int) and duration >= 0
        else None,
    }


# -- writing -------------------------------------------------------------------


def upsert_items(rows: Iterable[ItemValues], *, keep_existing: bool = False) -> int:
    """Insert or update items; `keep_existing` only fills gaps (item/started)."""
    unique: dict[tuple[str, str], ItemValues] = {}
    for row in rows:
        unique[(row.thread_id, row.item_id)] = row
    if not unique:
        return 0
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in ITEM_COLUMNS)
    if keep_existing:
        conflict = "DO NOTHING"
    else:
        conflict = "DO UPDATE SET " + ", ".join(
            f"{quote(c)} = excluded.{quote(c)}" for c in ITEM_UPDATE_FIELDS
        )
    sql = (
        f"INSERT INTO {quote(LaneItem._meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(ITEM_COLUMNS))}) "
        f"ON CONFLICT ({quote('thread_id')}, {quote('item_id')}) {conflict}"
    )
    adapt_time = datetime_adapter()
    dumps = json.dumps
    values = [
        (
            r.thread_id,
            r.turn_id,
            r.item_id,
            r.item_type,
            r.role,
            r.tool,
            r.status,
            r.text,
            dumps(r.files),
            None if r.payload is None else dumps(r.payload),
            r.bytes,
            r.source,
            adapt_time(r.created_at),
            None if r.completed_at is None else adapt_time(r.completed_at),
        )
        for r in unique.values()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)
    return len(unique)


def upsert_turns(rows: dict[tuple[str, str], dict[str, Any]]) -> int:
    """Upsert turns, each updating only the fields its source knows."""
    groups: dict[tuple[str, ...], list[LaneTurn]] = {}
    for (thread_id, turn_id), known_fields in rows.items():
        known = tuple(sorted(k for k, v in known_fields.items() if v is not None))
        groups.setdefault(known, []).append(
            LaneTurn(thread_id=thread_id, turn_id=turn_id, **known_fields)
        )
    for known, turns in groups.items():
        if known:
            LaneTurn.objects.bulk_create(
                turns,
                update_conflicts=True,
                unique_fields=["thread_id", "turn_id"],
                update_fields=list(known),
            )
        else:
            LaneTurn.objects.bulk_create(turns, ignore_conflicts=True)
    return len(rows)


def collect(
    messages: Iterable[dict[str, Any]], now: datetime
) -> tuple[list[ItemValues], list[ItemValues], dict[tuple[str, str], dict[str, Any]]]:
    started: dict[tuple[str, str], ItemValues] = {}
    completed: dict[tuple[str, str], ItemValues] = {}
    turns: dict[tuple[str, str], dict[str, Any]] = {}
    for message in messages:
        method = message.get("method")
        if method not in INDEXED_METHODS:
            continue
        params = message.get("params") or {}
        thread_id = str(params.get("threadId") or "")
        if not thread_id:
            continue
        seen_at = message.get("_received_at") or now
        if method in ITEM_METHODS:
            item = params.get("item")
            if not isinstance(item, dict):
                continue
            row = item_row(
                thread_id=thread_id,
                turn_id=str(params.get("turnId") or ""),
                item=item,
                source=LaneItem.Source.LIVE,
                seen_at=seen_at,
            )
            if row is None:
                continue
            key = (thread_id, row.item_id)
            if method == ITEM_COMPLETED:
                first = started.pop(key, None)
                if first is not None and not item.get("startedAtMs"):
                    row.created_at = first.created_at
                row.completed_at = row.completed_at or seen_at
                completed[key] = row
            elif key not in completed:
                started[key] = row
            continue
        turn = params.get("turn")
        if not isinstance(turn, dict) or not turn.get("id"):
            continue
        key = (thread_id, str(turn["id"]))
        fields = turns.setdefault(key, {})
        if method == TURN_STARTED:
            fields["status"] = fields.get("status") or "inProgress"
            fields["started_at"] = s_time(turn.get("startedAt")) or seen_at
            fields["live_started"] = True
        else:
            done = turn_fields(turn)
            fields.update(
                status=done["status"] or "completed",
                error=done["error"],
                completed_at=done["completed_at"] or seen_at,
                duration_ms=done["duration_ms"],
                # A turn closed by recovery may have lost items with the
                # crash: sync must still fetch them.
                live_completed=RECOVERY_KEY not in params,
            )
    return list(started.values()), list(completed.values()), turns


def index_messages(
    messages: Iterable[dict[str, Any]], *, now: datetime | None = None
) -> IndexStats:
    """Index one journal batch; call inside the journal's transaction."""
    stats = IndexStats()
    try:
        started, completed, turns = collect(messages, now or timezone.now())
        if not (started or completed or turns):
            return stats
        # A savepoint: a bad item must not roll back the journal batch.
        with transaction.atomic():
            upsert_items(started, keep_existing=True)
            stats.items = upsert_items(completed)
            stats.turns = upsert_turns(turns)
    except Exception:
        log.exception("indexing a journal batch failed; events were kept")
    return stats


def index_item_rows(
    *, thread_id: str, rows: Iterable[dict[str, Any]], now: datetime | None = None
) -> int:
    """Index `thread/items/list` rows ({turnId, item, startedAtMs, ...})."""
    now = now or timezone.now()
    items = []
    for row in rows:
        item = row.get("item")
        if not isinstance(item, dict):
            continue
        lane_item = item_row(
            thread_id=thread_id,
            turn_id=str(row.get("turnId") or ""),
            item=item,
            source=LaneItem.Source.SYNC,
            seen_at=now,
            started_ms=row.get("startedAtMs"),
            completed_ms=row.get("completedAtMs"),
        )
        if lane_item is not None:
            items.append(lane_item)
    with transaction.atomic():
        return upsert_items(items)


def index_turn(*, thread_id: str, turn: dict[str, Any]) -> LaneTurn:
    """Record a turn from `thread/turns/list`; returns the stored row."""
    fields = {k: v for k, v in turn_fields(turn).items() if v not in (None, "")}
    fields.setdefault("error", "")
    obj, _created = LaneTurn.objects.update_or_create(
        thread_id=thread_id, turn_id=str(turn["id"]), defaults=fields
    )
    return obj
