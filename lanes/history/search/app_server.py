"""Codex's own `thread/search` and `thread/searchOccurrences`, through the
app-server, for threads no lane manages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lanes.appserver.protocol import thread_status
from lanes.history.search.filters import path_within
from lanes.history.search.index import thread_identity
from lanes.history.search.snippets import snippet
from lanes.models import Lane
from lanes.presenters import preview_text, unix_iso
from lanes.worker import gateway

REMOTE_MAX_PAGE = 100


def remote_match(
    row: dict[str, Any], *, query_words: list[str]
) -> dict[str, Any] | None:
    thread = row.get("thread")
    if not isinstance(thread, dict) or not thread.get("id"):
        return None
    text_snippet = str(row.get("snippet") or "")
    return {
        "ref": None,
        "id": thread["id"],
        "handle": None,
        "managed": False,
        "source": "unmanaged",
        "status": thread_status(thread),
        "name": thread.get("name"),
        "cwd": thread.get("cwd"),
        "origin": "app-server",
        "item_id": None,
        "turn_id": None,
        "type": None,
        "role": None,
        "tool": None,
        "preview": preview_text(thread.get("preview")),
        "snippet": snippet(text_snippet, query_words) if text_snippet else "",
        "score": None,
        "created_at": unix_iso(thread.get("createdAt")),
        "updated_at": unix_iso(thread.get("updatedAt")),
    }


def search_app_server(
    *,
    host: str,
    query: str,
    words: list[str],
    limit: int,
    max_scan: int,
    roots: list[str],
    since: datetime | None,
    until: datetime | None,
    archived: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Unmanaged threads matching `query`, newest first; (matches, scanned)."""
    managed = set(Lane.objects.values_list("thread_id", flat=True))
    matches: list[dict[str, Any]] = []
    scanned = 0
    cursor: str | None = None
    while len(matches) < limit and scanned < max_scan:
        params: dict[str, Any] = {
            "searchTerm": query,
            "limit": min(max(limit * 4, 20), REMOTE_MAX_PAGE, max_scan - scanned),
            "archived": archived,
        }
        if cursor:
            params["cursor"] = cursor
        with gateway.rpc_errors():
            page = gateway.rpc(host, "thread/search", params)
        rows = page.get("data") or []
        scanned += len(rows)
        for row in rows:
            match = remote_match(row, query_words=words)
            if match is None or match["id"] in managed:
                continue
            if roots and not path_within(match["cwd"] or "", roots):
                continue
            updated = match["updated_at"]
            if updated and (
                (since and datetime.fromisoformat(updated) < since)
                or (until and datetime.fromisoformat(updated) >= until)
            ):
                continue
            matches.append(match)
            if len(matches) >= limit:
                break
        cursor = page.get("nextCursor")
        if not cursor or not rows:
            break
    return matches, scanned


def search_thread_occurrences(
    *, host: str, thread_id: str, query: str, words: list[str], limit: int
) -> list[dict[str, Any]]:
    """Item-level matches inside one unmanaged thread (thread/searchOccurrences)."""
    with gateway.rpc_errors():
        page = gateway.rpc(
            host,
            "thread/searchOccurrences",
            {"threadId": thread_id, "searchTerm": query},
        )
    out = []
    for row in (page.get("data") or [])[:limit]:
        out.append(
            {
                **thread_identity(None, thread_id=thread_id),
                "origin": "app-server",
                "item_id": row.get("itemId"),
                "turn_id": row.get("turnId"),
                "type": None,
                "role": None,
                "tool": None,
                "preview": "",
                "snippet": snippet(str(row.get("snippet") or ""), words),
                "score": None,
                "created_at": None,
                "updated_at": None,
            }
        )
    return out
