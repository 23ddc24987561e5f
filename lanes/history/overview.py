"""History from the local item index only: no app-server calls.

Overview: one summary per lane (turns, items, messages, tool calls, files
changed, transcript bytes, estimated tokens, first/last event, worktree).
One lane: its summary, or its items / tools / files. What the index lacks
(a thread attached mid-life, never synced) it says so through `index`,
and `dispatch sync <lane>` fills it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import Coalesce

from dispatchsite.core.errors import ValidationError
from lanes.models import Lane
from lanes.models.index import LaneItem, LaneSyncState, LaneTurn
from lanes.signals import worktree_facts_for

MESSAGE_TYPES = ("userMessage", "agentMessage")
FILES_CHANGED_MAX = 25
# Thread ids are UUIDs (v7 for Codex); subagent ids are found in collab items.
THREAD_ID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)
VIEWS = ("auto", "overview", "summary", "items", "tools", "files")


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- summaries -----------------------------------------------------------------


def index_view(state: LaneSyncState | None, *, items: int) -> dict[str, Any]:
    if state is None:
        return {
            "state": "live" if items else "empty",
            "history_complete": False,
            "last_synced_at": None,
        }
    return {
        "state": state.state,
        "history_complete": state.history_complete,
        "last_synced_at": iso(state.last_synced_at),
    }


def subagent_ids(payloads: list[Any], own: str) -> list[str]:
    found: list[str] = []
    for payload in payloads:
        if not isinstance(payload, dict):
            continue
        values: list[Any] = [
            payload.get("newThreadId"),
            payload.get("receiverThreadId"),
        ]
        values += list(payload.get("receiverThreadIds") or [])
        for value in values:
            if isinstance(value, str) and THREAD_ID.fullmatch(value) and value != own:
                if value not in found:
                    found.append(value)
    return found


def thread_summaries(
    lanes: list[Lane], *, with_worktree: bool = True
) -> list[dict[str, Any]]:
    """HistoryThreadSummary for each lane, from a handful of grouped queries."""
    ids = [lane.thread_id for lane in lanes]
    items = LaneItem.objects.filter(thread_id__in=ids)
    item_stats: dict[str, dict[str, Any]] = {
        row["thread_id"]: dict(row)
        for row in items.values("thread_id").annotate(
            n=Count("id"),
            messages=Count("id", filter=Q(item_type__in=MESSAGE_TYPES)),
            tool_calls=Count("id", filter=~Q(tool="")),
            transcript_bytes=Sum("bytes"),
            first=Min("created_at"),
            last=Max(Coalesce("completed_at", "created_at")),
        )
    }
    turn_stats: dict[str, dict[str, Any]] = {
        row["thread_id"]: dict(row)
        for row in LaneTurn.objects.filter(thread_id__in=ids)
        .values("thread_id")
        .annotate(
            n=Count("id"),
            first=Min("started_at"),
            last=Max(Coalesce("completed_at", "started_at")),
        )
    }
    tools: dict[str, list[str]] = {}
    for thread_id, tool in (
        items.exclude(tool="")
        .values_list("thread_id", "tool")
        .distinct()
        .order_by("tool")
    ):
        tools.setdefault(thread_id, []).append(tool)
    changed: dict[str, Counter[str]] = {}
    for thread_id, files in items.filter(item_type="fileChange").values_list(
        "thread_id", "files"
    ):
        changed.setdefault(thread_id, Counter()).update(files or [])
    collab: dict[str, list[Any]] = {}
    for thread_id, payload in items.filter(item_type="collabAgentToolCall").values_list(
        "thread_id", "payload"
    ):
        collab.setdefault(thread_id, []).append(payload)
    states = {s.thread_id: s for s in LaneSyncState.objects.filter(thread_id__in=ids)}
    trees = worktree_facts_for({lane.cwd for lane in lanes}) if with_worktree else {}
    out = []
    for lane in lanes:
        stats = item_stats.get(lane.thread_id) or {}
        turns = turn_stats.get(lane.thread_id) or {}
        firsts = [t for t in (stats.get("first"), turns.get("first")) if t is not None]
        lasts = [
            t for t in (stats.get("last"), turns.get("last"), lane.last_event_at) if t
        ]
        counter = changed.get(lane.thread_id) or Counter()
        transcript_bytes = int(stats.get("transcript_bytes") or 0)
        subagents = subagent_ids(collab.get(lane.thread_id, []), lane.thread_id)
        out.append(
            {
                "ref": lane.ref,
                "id": lane.thread_id,
                "handle": lane.handle,
                "source": lane.source,
                "status": lane.status,
                "cwd": lane.cwd,
                "first_event_at": iso(min(firsts)) if firsts else None,
                "last_event_at": iso(max(lasts)) if lasts else None,
                "turns": int(turns.get("n") or 0),
                "items": int(stats.get("n") or 0),
                "messages": int(stats.get("messages") or 0),
                "tool_calls": int(stats.get("tool_calls") or 0),
                "unique_tools": tools.get(lane.thread_id, []),
                "files_changed_count": len(counter),
                "files_changed": [
                    {"path": path, "count": count}
                    for path, count in counter.most_common(FILES_CHANGED_MAX)
                ],
                "transcript_bytes": transcript_bytes,
                "estimated_tokens": transcript_bytes // 4,
                "subagents_count": len(subagents),
                "subagent_thread_ids": subagents,
                "worktree": trees.get(lane.cwd) if with_worktree else None,
                "index": index_view(
                    states.get(lane.thread_id), items=int(stats.get("n") or 0)
                ),
            }
        )
    return out


def history_overview(
    *,
    cwd: str | None = None,
    source: str | None = None,
    status: str | None = None,
    has_tool: str | None = None,
    worktree: str = "any",
    min_bytes: int | None = None,
) -> list[dict[str, Any]]:
    lanes = Lane.objects.visible(include_archived=status == Lane.Status.ARCHIVED)
    if source:
        lanes = lanes.filter(source=source)
    if status:
        lanes = lanes.filter(status=status)
    if cwd:
        lanes = lanes.filter(cwd__contains=cwd)
    summaries = thread_summaries(list(lanes), with_worktree=True)
    if has_tool:
        needle = has_tool.lower()
        summaries = [
            s
            for s in summaries
            if any(needle in tool.lower() for tool in s["unique_tools"])
        ]
    if min_bytes is not None:
        summaries = [s for s in summaries if s["transcript_bytes"] >= min_bytes]
    if worktree != "any":
        want_dirty = worktree == "changed"
        summaries = [
            s
            for s in summaries
            if s["worktree"]
            and s["worktree"]["detected"]
            and bool(s["worktree"]["dirty"]) == want_dirty
        ]
    return summaries


# -- one lane ------------------------------------------------------------------


def lane_items(
    *,
    lane: Lane,
    item_type: str | None = None,
    tool: str | None = None,
    role: str | None = None,
    grep: str | None = None,
    raw: bool = False,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest `limit` matching items, oldest first."""
    items = LaneItem.objects.of_thread(lane.thread_id)
    if item_type:
        items = items.filter(item_type=item_type)
    if tool:
        items = items.filter(tool__icontains=tool)
    if role:
        items = items.filter(role=role)
    if grep:
        items = items.filter(text__icontains=grep)
    if not raw:
        items = items.defer("payload")
    newest = list(items.order_by("-created_at", "-id")[:limit])
    return [item.as_history_item(raw=raw) for item in reversed(newest)]


def lane_tools(*, lane: Lane) -> list[dict[str, Any]]:
    rows = (
        LaneItem.objects.of_thread(lane.thread_id)
        .exclude(tool="")
        .values("tool", "item_type")
        .annotate(n=Count("id"))
    )
    stats: dict[str, dict[str, Any]] = {}
    for row in rows:
        stat = stats.setdefault(
            row["tool"], {"tool": row["tool"], "count": 0, "item_types": []}
        )
        stat["count"] += row["n"]
        stat["item_types"].append(row["item_type"])
    return sorted(stats.values(), key=lambda s: (-s["count"], s["tool"]))


def lane_files(*, lane: Lane, limit: int = 200) -> list[dict[str, Any]]:
    """Files the lane touched: changed (fileChange) and referenced (other items)."""
    changed: Counter[str] = Counter()
    referenced: Counter[str] = Counter()
    rows = (
        LaneItem.objects.of_thread(lane.thread_id)
        .exclude(files=[])
        .values_list("item_type", "files")
    )
    for item_type, files in rows:
        (changed if item_type == "fileChange" else referenced).update(files or [])
    paths = sorted(
        set(changed) | set(referenced), key=lambda p: (-changed[p], -referenced[p], p)
    )
    return [
        {
            "path": p,
            "count": changed[p] + referenced[p],
            "changed": changed[p],
            "referenced": referenced[p],
        }
        for p in paths[:limit]
    ]


def history_run(
    *,
    lane: Lane | None,
    view: str = "auto",
    item_type: str | None = None,
    tool: str | None = None,
    role: str | None = None,
    grep: str | None = None,
    raw: bool = False,
    limit: int = 50,
    cwd: str | None = None,
    source: str | None = None,
    status: str | None = None,
    has_tool: str | None = None,
    worktree: str = "any",
    min_bytes: int | None = None,
) -> dict[str, Any]:
    """HistoryOutput: mode, threads[], thread, items[], tools[], files[]."""
    mode = view if view != "auto" else ("summary" if lane is not None else "overview")
    if mode == "overview" and lane is not None:
        raise ValidationError(
            "history --view overview lists every lane; it takes no lane",
            hint="drop the lane, or use --view summary|items|tools|files",
        )
    if mode != "overview" and lane is None:
        raise ValidationError(
            f"history --view {mode} needs a lane",
            hint="pass a lane (`dispatch history <lane> --view ...`) or drop --view",
        )
    item_filters = any(v for v in (item_type, tool, role, grep)) or raw
    if item_filters and mode != "items":
        raise ValidationError(
            "--type/--tool/--role/--grep/--raw filter items",
            hint="add --view items",
        )
    overview_filters = any(v for v in (cwd, source, status, has_tool)) or (
        min_bytes is not None or worktree != "any"
    )
    if overview_filters and mode != "overview":
        raise ValidationError(
            "--cwd/--source/--status/--has-tool/--changed/--clean/--min-bytes "
            "filter the overview",
            hint="drop the lane to get the overview",
        )
    out: dict[str, Any] = {
        "mode": mode,
        "threads": [],
        "thread": None,
        "items": [],
        "tools": [],
        "files": [],
    }
    if mode == "overview":
        out["threads"] = history_overview(
            cwd=cwd,
            source=source,
            status=status,
            has_tool=has_tool,
            worktree=worktree,
            min_bytes=min_bytes,
        )
        return out
    assert lane is not None
    out["thread"] = thread_summaries([lane], with_worktree=mode == "summary")[0]
    if mode == "items":
        out["items"] = lane_items(
            lane=lane,
            item_type=item_type,
            tool=tool,
            role=role,
            grep=grep,
            raw=raw,
            limit=limit,
        )
    elif mode == "tools":
        out["tools"] = lane_tools(lane=lane)
    elif mode == "files":
        out["files"] = lane_files(lane=lane)
    return out
