"""Threads Codex knows about that dispatch does not manage (`list --unmanaged`).

Read-only: nothing here resumes or registers a thread.
"""

from __future__ import annotations

from typing import Any

from lanes.models import Lane
from lanes.presenters import discovery_row
from lanes.worker import gateway

MAX_PAGES = 20
MAX_PAGE_SIZE = 100


def threads_discover(*, host: str, limit: int, archived: bool) -> list[dict[str, Any]]:
    """Newest-updated first, managed threads left out, at most `limit` rows."""
    managed = set(Lane.objects.values_list("thread_id", flat=True))
    # Ask for enough that filtering out managed threads still fills the page.
    page_size = min(MAX_PAGE_SIZE, limit + len(managed))
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        params: dict[str, Any] = {
            "limit": page_size,
            "sortKey": "updated_at",
            "sortDirection": "desc",
            "archived": archived,
        }
        if cursor:
            params["cursor"] = cursor
        with gateway.rpc_errors():
            page = gateway.rpc(host, "thread/list", params)
        for thread in page.get("data") or []:
            if isinstance(thread, dict) and thread.get("id") not in managed:
                rows.append(discovery_row(thread, archived=archived))
        cursor = page.get("nextCursor")
        if not cursor or len(rows) >= limit:
            break
    return rows[:limit]
