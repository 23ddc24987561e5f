"""Compact transcripts: the journal when it holds a lane's whole life, else Codex.

`thread/read includeTurns` is deprecated, so history from the app-server is
paged with `thread/items/list` (newest first), falling back to
`thread/turns/list` with full items when a build lacks item paging.
"""

from __future__ import annotations

from typing import Any

from dispatchsite.core.errors import AppServerError
from lanes.appserver.protocol import (
    ITEM_COMPLETED,
    THREAD_ITEMS_LIST,
    THREAD_TURNS_LIST,
    is_unknown_method_error,
)
from lanes.models import Lane, LaneEvent
from lanes.worker import gateway

PAGE = 100
MAX_PAGES = 50


def item_text(item: dict[str, Any]) -> str:
    if isinstance(item.get("text"), str):
        return item["text"]
    parts = item.get("content")
    if isinstance(parts, list):
        return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
    if item.get("aggregatedOutput"):
        return str(item["aggregatedOutput"])
    if item.get("command"):
        return str(item["command"])
    summary = item.get("summary")
    if isinstance(summary, list):
        return "\n".join(str(s) for s in summary)
    return ""


def compact_item(turn_id: str | None, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "turn_id": turn_id or None,
        "item_id": item.get("id"),
        "type": item.get("type", ""),
        "text": item_text(item),
    }


def journal_items(*, thread_id: str, limit: int) -> list[dict[str, Any]]:
    events = LaneEvent.objects.filter(
        thread_id=thread_id, method=ITEM_COMPLETED
    ).order_by("-seq")[:limit]
    return [
        compact_item(event.turn_id, event.params.get("item") or {})
        for event in reversed(list(events))
    ]


def journal_is_complete(*, thread_id: str) -> bool:
    """True when the journal saw the thread being born here.

    A fork starts with inherited turns the journal never saw, and retention
    may have pruned the beginning; both make the app-server the better source.
    """
    first = LaneEvent.objects.filter(thread_id=thread_id).order_by("seq").first()
    if first is None or first.method != "thread/started":
        return False
    thread = first.params.get("thread") or {}
    return not thread.get("forkedFromId")


def app_server_items(*, host: str, thread_id: str, limit: int) -> list[dict[str, Any]]:
    with gateway.rpc_errors(tolerate=is_unknown_method_error):
        return paged_items(host=host, thread_id=thread_id, limit=limit)
    # A build without item paging: whole turns, with their items.
    with gateway.rpc_errors():
        return turn_page_items(host=host, thread_id=thread_id, limit=limit)


def paged_items(*, host: str, thread_id: str, limit: int) -> list[dict[str, Any]]:
    newest_first: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        params: dict[str, Any] = {
            "threadId": thread_id,
            "limit": min(PAGE, limit - len(newest_first)),
            "sortDirection": "desc",
        }
        if cursor:
            params["cursor"] = cursor
        page = gateway.rpc(host, THREAD_ITEMS_LIST, params)
        for row in page.get("data") or []:
            newest_first.append(compact_item(row.get("turnId"), row.get("item") or {}))
        cursor = page.get("nextCursor")
        if not cursor or len(newest_first) >= limit:
            break
    return list(reversed(newest_first[:limit]))


def turn_page_items(*, host: str, thread_id: str, limit: int) -> list[dict[str, Any]]:
    newest_first: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        params: dict[str, Any] = {
            "threadId": thread_id,
            "limit": 10,
            "sortDirection": "desc",
            "itemsView": "full",
        }
        if cursor:
            params["cursor"] = cursor
        page = gateway.rpc(host, THREAD_TURNS_LIST, params)
        for turn in page.get("data") or []:
            for item in reversed(turn.get("items") or []):
                newest_first.append(compact_item(turn.get("id"), item))
        cursor = page.get("nextCursor")
        if not cursor or len(newest_first) >= limit:
            break
    return list(reversed(newest_first[:limit]))


def transcript_items(*, lane: Lane, limit: int) -> tuple[list[dict[str, Any]], str]:
    """The last `limit` items of a lane, oldest first, and where they came from."""
    if lane.source == Lane.Source.OWN and journal_is_complete(thread_id=lane.thread_id):
        return journal_items(thread_id=lane.thread_id, limit=limit), "journal"
    try:
        items = app_server_items(host=lane.host, thread_id=lane.thread_id, limit=limit)
    except AppServerError:
        # No worker: what the journal saw beats nothing, and says so.
        items = journal_items(thread_id=lane.thread_id, limit=limit)
        if not items:
            raise
        return items, "journal-partial"
    return items, "app-server"
