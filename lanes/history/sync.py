"""`dispatch sync`: pull a thread's history from Codex into the item index.

History comes from `thread/turns/list` (newest first) and, per turn that
is not settled yet, `thread/items/list` (oldest first, paged). A turn is
settled when it has finished and all its items are indexed: either the
journal saw it start (live indexing got every item) or a sync fetched them.

One sync is bounded by time, bytes, turns and items. A pass ends at the
`head_turn_id` of the previous complete pass (everything below it is
settled) or at the thread's first turn. A pass cut short stores its turn
cursor (and the item cursor inside the turn it stopped in) so the next sync
resumes it before looking for newer turns: opaque Codex cursors, kept in
LaneSyncState, survive restarts.

Builds without `thread/items/list` get turn pages with full items instead
(`turn-page-fallback`); builds without `thread/turns/list` cannot sync.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from dispatchsite.core.errors import (
    CapabilityUnavailableError,
    DispatchError,
    LaneBusyError,
)
from dispatchsite.core.origin import Origin
from lanes import services
from lanes.appserver.protocol import (
    THREAD_ITEMS_LIST,
    THREAD_TURNS_LIST,
    is_unknown_method_error,
)
from lanes.journal.indexing import index_item_rows, index_turn
from lanes.models import Lane
from lanes.models.index import LaneSyncState, LaneTurn
from lanes.presenters import lane_identity
from lanes.selectors import resolve_lane_or_thread
from lanes.worker import gateway

DEFAULT_MAX_TURNS = 50
DEFAULT_MAX_ITEMS = 500
DEFAULT_MAX_BYTES = 512 * 1024
DEFAULT_MAX_SECONDS = 5.0
TURN_PAGE = 20
ITEM_PAGE = 100
LEASE_GRACE_SECONDS = 30


class Truncated(Exception):
    """A budget ran out; the pass saved where to resume."""


class RefetchPage(Exception):
    """Item paging is unsupported: fetch this turn page again with full items."""


@dataclass
class Budget:
    max_turns: int
    max_items: int
    max_bytes: int
    max_seconds: float
    started: float = 0.0
    turns: int = 0
    items: int = 0
    bytes: int = 0
    pages: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds_left(self) -> float:
        return self.max_seconds - (time.monotonic() - self.started)

    def check(self) -> None:
        if (
            self.seconds_left <= 0
            or self.turns >= self.max_turns
            or self.items >= self.max_items
            or (self.items > 0 and self.bytes >= self.max_bytes)
        ):
            raise Truncated()


class SyncRun:
    def __init__(self, *, lane: Lane, state: LaneSyncState, budget: Budget) -> None:
        self.lane = lane
        self.state = state
        self.budget = budget
        self.fallback = state.capability == LaneSyncState.Capability.TURN_PAGE_FALLBACK

    # -- app-server pages ----------------------------------------------------

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.budget.check()
        timeout = min(
            float(settings.DISPATCH_RPC_TIMEOUT),
            max(2.0, self.budget.seconds_left + 2.0),
        )
        page = gateway.rpc(self.lane.host, method, params, timeout=timeout)
        if not isinstance(page, dict):
            page = {}
        size = len(json.dumps(page, separators=(",", ":"), default=str))
        self.budget.pages += 1
        # A page past the byte budget is dropped (and fetched again by the
        # next sync) once this sync indexed something: each sync must make
        # progress, even when one page is larger than the whole budget.
        if self.budget.items and self.budget.bytes + size > self.budget.max_bytes:
            self.budget.bytes += size
            raise Truncated()
        self.budget.bytes += size
        return page

    # -- passes ------------------------------------------------------------------

    def run_pass(self, *, cursor: str | None, top: str | None, full: bool) -> None:
        """Walk turns newest first down to head_turn_id (or the first turn)."""
        state = self.state
        stop_at = "" if full else state.head_turn_id
        while True:
            params: dict[str, Any] = {
                "threadId": self.lane.thread_id,
                "limit": max(
                    1, min(TURN_PAGE, self.budget.max_turns - self.budget.turns)
                ),
                "sortDirection": "desc",
                "itemsView": "full" if self.fallback else "notLoaded",
            }
            if cursor:
                params["cursor"] = cursor
            try:
                page = self.call(THREAD_TURNS_LIST, params)
                for turn in page.get("data") or []:
                    if not isinstance(turn, dict) or not turn.get("id"):
                        continue
                    if stop_at and turn["id"] == stop_at:
                        self.finish(top)
                        return
                    self.budget.turns += 1
                    row = index_turn(thread_id=self.lane.thread_id, turn=turn)
                    if row.settled and not full:
                        self.budget.skipped += 1
                    else:
                        self.sync_turn_items(row, turn)
                    if top is None and row.finished:
                        top = row.turn_id
            except RefetchPage:
                continue
            except Truncated:
                state.resume_active = True
                state.resume_cursor = cursor or ""
                state.resume_top_turn_id = top or ""
                state.resume_full = full
                raise
            cursor = page.get("nextCursor")
            if not cursor:
                self.finish(top)
                return

    def finish(self, top: str | None) -> None:
        state = self.state
        if top:
            state.head_turn_id = top
        state.history_complete = True
        state.resume_active = False
        state.resume_cursor = ""
        state.resume_top_turn_id = ""
        state.resume_full = False
        state.item_turn_id = ""
        state.item_cursor = ""

    def sync_turn_items(self, row: LaneTurn, turn: dict[str, Any]) -> None:
        thread_id = self.lane.thread_id
        if self.fallback:
            rows = [
                {"turnId": row.turn_id, "item": item}
                for item in turn.get("items") or []
            ]
            self.budget.items += index_item_rows(thread_id=thread_id, rows=rows)
        else:
            state = self.state
            cursor = state.item_cursor if state.item_turn_id == row.turn_id else ""
            while True:
                params: dict[str, Any] = {
                    "threadId": thread_id,
                    "turnId": row.turn_id,
                    "limit": max(
                        1, min(ITEM_PAGE, self.budget.max_items - self.budget.items)
                    ),
                    "sortDirection": "asc",
                }
                if cursor:
                    params["cursor"] = cursor
                try:
                    page = self.call(THREAD_ITEMS_LIST, params)
                except gateway.RpcFailed as exc:
                    if not is_unknown_method_error(exc.message):
                        raise
                    self.fallback = True
                    state.capability = LaneSyncState.Capability.TURN_PAGE_FALLBACK
                    raise RefetchPage() from None
                except Truncated:
                    state.item_turn_id = row.turn_id
                    state.item_cursor = cursor
                    raise
                self.budget.items += index_item_rows(
                    thread_id=thread_id, rows=page.get("data") or []
                )
                cursor = page.get("nextCursor") or ""
                if not cursor:
                    break
            state.item_turn_id = ""
            state.item_cursor = ""
            state.capability = LaneSyncState.Capability.SUPPORTED
        if row.finished:
            LaneTurn.objects.filter(pk=row.pk).update(items_synced_at=timezone.now())


# -- lease ---------------------------------------------------------------------


def sync_lease_claim(*, state: LaneSyncState, seconds: float) -> None:
    now = timezone.now()
    claimed = LaneSyncState.objects.filter(
        Q(running_until__isnull=True) | Q(running_until__lt=now), pk=state.pk
    ).update(running_until=now + timedelta(seconds=seconds + LEASE_GRACE_SECONDS))
    if not claimed:
        raise LaneBusyError(
            f"a sync of thread {state.thread_id} is already running",
            hint="wait for it to finish, then sync again",
        )
    state.refresh_from_db()


# -- the service ---------------------------------------------------------------


def sync_view(state: LaneSyncState | None, lane: Lane) -> dict[str, Any]:
    """LaneSyncView: what the index holds for a lane and how the last sync went."""
    if state is None:
        state = LaneSyncState(thread_id=lane.thread_id)
    return {
        "state": state.state,
        "last_synced_at": state.last_synced_at.isoformat()
        if state.last_synced_at
        else None,
        "latest_event_at": lane.last_event_at.isoformat()
        if lane.last_event_at
        else None,
        "latest_turn_id": lane.latest_turn_id or None,
        "transcript_partial": not state.history_complete or state.resume_active,
        "error": state.error or None,
        "history_source": "app-server",
        "history_complete": state.history_complete and not state.resume_active,
        "history_capability": state.capability,
        "resumable": state.resume_active,
        "pages_scanned": state.pages_scanned,
        "turns_indexed": state.turns_indexed,
        "items_indexed": state.items_indexed,
        "unchanged_skipped": state.unchanged_skipped,
        "scanned_bytes": state.scanned_bytes,
        "duration_ms": state.duration_ms,
        "truncated": state.truncated,
    }


def lane_sync(
    *,
    lane: Lane,
    full: bool = False,
    max_turns: int = DEFAULT_MAX_TURNS,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    origin: Origin,
) -> LaneSyncState:
    """Index (more of) a lane's history; resumable, bounded, idempotent."""
    state, _created = LaneSyncState.objects.get_or_create(thread_id=lane.thread_id)
    sync_lease_claim(state=state, seconds=max_seconds)
    budget = Budget(
        max_turns=max_turns,
        max_items=max_items,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
    )
    run = SyncRun(lane=lane, state=state, budget=budget)
    error: DispatchError | None = None
    try:
        if full:
            run.finish(None)
            state.history_complete = False
        try:
            if state.resume_active:
                run.run_pass(
                    cursor=state.resume_cursor or None,
                    top=state.resume_top_turn_id or None,
                    full=state.resume_full,
                )
            run.run_pass(cursor=None, top=None, full=full)
            state.truncated = False
        except Truncated:
            state.truncated = True
        state.error = ""
        state.state = (
            LaneSyncState.State.COMPLETE
            if state.history_complete and not state.resume_active
            else LaneSyncState.State.PARTIAL
        )
    except gateway.RpcFailed as exc:
        if is_unknown_method_error(exc.message):
            state.capability = LaneSyncState.Capability.UNSUPPORTED
            error = CapabilityUnavailableError(
                f"this codex app-server cannot page history ({exc.message})",
                hint="upgrade codex (`dispatch doctor` shows the version)",
            )
        else:
            error = gateway.classify_rpc_error(exc)
    except DispatchError as exc:
        error = exc
    finally:
        state.last_synced_at = timezone.now()
        state.pages_scanned = budget.pages
        state.turns_indexed = budget.turns
        state.items_indexed = budget.items
        state.unchanged_skipped = budget.skipped
        state.scanned_bytes = budget.bytes
        state.duration_ms = int((time.monotonic() - budget.started) * 1000)
        state.running_until = None
        if error is not None:
            state.state = LaneSyncState.State.ERROR
            state.error = error.message[:2000]
        state.save()
    detail = (
        f"{state.state}: {budget.turns} turns, {budget.items} items, "
        f"{budget.pages} pages{' (truncated)' if state.truncated else ''}"
    )
    services.audit_record(
        op="sync",
        lane=lane,
        outcome=error.code if error else "ok",
        detail=error.message if error else detail,
        origin=origin,
    )
    if error is not None:
        raise error
    return state


def sync_run(
    *,
    selector: str,
    full: bool = False,
    max_turns: int = DEFAULT_MAX_TURNS,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    origin: Origin,
) -> dict[str, Any]:
    """LaneSyncResult for a lane selector or a raw thread id (attached first)."""
    lane, thread_id = resolve_lane_or_thread(selector)
    registered = False
    if lane is None:
        attached = services.lane_attach(thread_id=thread_id, sync=True, origin=origin)
        lane, registered = attached["lane"], bool(attached["registered"])
    else:
        services.lane_sync_latest(lane=lane, origin=origin)
    state = lane_sync(
        lane=lane,
        full=full,
        max_turns=max_turns,
        max_items=max_items,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
        origin=origin,
    )
    lane.refresh_from_db()
    return {
        **lane_identity(lane),
        "registered": registered,
        "sync": sync_view(state, lane),
    }
