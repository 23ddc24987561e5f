"""Reply rows several lane op modules build the same way."""

from __future__ import annotations

from typing import Any

from dispatchsite.core.config import Policy
from lanes.history.sync import sync_view
from lanes.models import Lane
from lanes.models.index import LaneSyncState
from lanes.presenters import lane_identity, lane_list_item


def ack(lane: Lane, fields: dict[str, Any], *, refresh: bool = True) -> dict[str, Any]:
    # The service changed the lane's row; reply with its state after the call
    # (refresh=False: the service re-read the lane after its last write).
    if refresh:
        lane.refresh_from_db()
    return {**lane_identity(lane), "accepted": True, **fields}


def sync_states(lanes: list[Lane]) -> dict[str, LaneSyncState]:
    """Each lane's sync state; lanes never synced share one blank state
    (building one per row in sync_view was a fifth of `list`'s CPU)."""
    ids = [lane.thread_id for lane in lanes]
    found = {
        state.thread_id: state
        for state in LaneSyncState.objects.filter(thread_id__in=ids)
    }
    blank = LaneSyncState()
    return {thread_id: found.get(thread_id, blank) for thread_id in ids}


def lane_row(
    lane: Lane, states: dict[str, LaneSyncState], policy: Policy | None = None
) -> dict[str, Any]:
    return {
        **lane_list_item(lane, policy),
        "sync": sync_view(states.get(lane.thread_id), lane),
    }
