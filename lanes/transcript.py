"""Transcript items from the journal: completed items, oldest first."""

from __future__ import annotations

from typing import Any

from lanes.models import Lane, LaneEvent


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
    return ""


def transcript_items(*, lane: Lane, limit: int) -> list[dict[str, Any]]:
    events = LaneEvent.objects.filter(
        thread_id=lane.thread_id, method="item/completed"
    ).order_by("-seq")[:limit]
    items = []
    for event in reversed(list(events)):
        item = event.params.get("item") or {}
        items.append({
            "turn_id": event.turn_id or None,
            "item_id": event.item_id or None,
            "type": item.get("type", ""),
            "text": item_text(item),
        })
    return items
