"""Ranked matches from the local item index."""

from __future__ import annotations

from typing import Any

from lanes.history.search.dialects import fts_candidates
from lanes.history.search.filters import ItemFilter
from lanes.history.search.query import ParsedQuery
from lanes.history.search.snippets import snippet
from lanes.models import Lane
from lanes.models.index import LaneItem
from lanes.presenters import preview_text, thread_action_ref


def item_match(
    item: LaneItem, lane: Lane | None, *, score: float, words: list[str]
) -> dict[str, Any]:
    return {
        **thread_identity(lane, thread_id=item.thread_id),
        "origin": "index",
        "item_id": item.item_id,
        "turn_id": item.turn_id or None,
        "type": item.item_type,
        "role": item.role or None,
        "tool": item.tool or None,
        "preview": preview_text(item.text),
        "snippet": snippet(item.text, words),
        "score": round(-score, 6),
        "created_at": item.created_at.isoformat(),
        "updated_at": (item.completed_at or item.created_at).isoformat(),
    }


def thread_identity(lane: Lane | None, *, thread_id: str) -> dict[str, Any]:
    identity = thread_action_ref(
        lane=lane, thread_id=thread_id, status="unknown", cwd=None
    )
    return {**identity, "name": lane.title if lane is not None else None}


def search_index(
    *, parsed: ParsedQuery, where: ItemFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], bool, int]:
    """Ranked item matches, whether more follow, how many were ranked."""
    ranked, candidates = fts_candidates(
        parsed=parsed, where=where, limit=limit + 1, offset=offset
    )
    more = len(ranked) > limit
    ranked = ranked[:limit]
    items = LaneItem.objects.in_bulk([pk for pk, _ in ranked])
    lanes = {
        lane.thread_id: lane
        for lane in Lane.objects.filter(
            thread_id__in={i.thread_id for i in items.values()}
        )
    }
    words = parsed.highlight_words
    matches = [
        item_match(items[pk], lanes.get(items[pk].thread_id), score=score, words=words)
        for pk, score in ranked
        if pk in items
    ]
    return matches, more, candidates
