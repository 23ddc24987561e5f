"""The one writer of a lane's turn state: status, active turn, latest turn.

Two processes change it. The worker follows the app-server's messages,
mutating the Lane rows of a journal batch in memory and saving them once per
batch (the journal's hot path: no query of its own per event). Services and
the worker's recovery write it when they act on a thread: a turn/start
answer, a failed request, archive, restore, rollback, a dead app-server.
Their UPDATEs are conditional where the other process may have moved first,
so each check and its write are one statement.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef
from django.utils import timezone

from lanes.appserver.protocol import APPROVAL_METHODS, TURN_COMPLETED, TURN_STARTED
from lanes.journal.eventstore import EventRow
from lanes.models import Lane, LaneEvent

# The only lane columns the journal writes: a rename or archive made by a
# service in between must never be overwritten by a stale copy of the row.
LANE_STATE_FIELDS = [
    "status",
    "active_turn_id",
    "latest_turn_id",
    "latest_turn_status",
    "latest_error",
    "latest_error_at",
    "queue_held",
    "goal",
    "last_event_at",
    "updated_at",
]

# A lane row is rewritten when its state changes, but for last_event_at
# alone only every LAST_EVENT_RESOLUTION: under a stream of deltas the
# per-batch UPDATEs were a third of the worker's time.
LAST_EVENT_RESOLUTION = timedelta(seconds=1)
TRACKED_FIELDS = [
    f for f in LANE_STATE_FIELDS if f not in ("last_event_at", "updated_at")
]

LaneSnapshot = tuple[tuple[Any, ...], datetime | None]

# The params key of a turn/completed the worker journals for a turn it found
# gone: {"reason": ..., "source": where the status came from}.
RECOVERY_KEY = "dispatchRecovery"
# Its `cause` when the turn's own events were dropped from the journal
# (lanes.worker.gap_repair): the status is codex's, the turn was not cut off.
GAP_CAUSE = "journal-gap"


# -- the journal: in memory, saved once per batch ---------------------------------


def lane_snapshot(lane: Lane) -> LaneSnapshot:
    return tuple(getattr(lane, f) for f in TRACKED_FIELDS), lane.last_event_at


def lane_save_journaled(lane: Lane, before: LaneSnapshot, now: datetime) -> None:
    """Write what a batch changed; call inside the batch's transaction."""
    state, last_event_at = before
    if (
        lane_snapshot(lane)[0] != state
        or last_event_at is None
        or now - last_event_at >= LAST_EVENT_RESOLUTION
    ):
        lane.save(update_fields=LANE_STATE_FIELDS)


def lane_apply_event(lane: Lane, event: LaneEvent | EventRow, now: datetime) -> bool:
    """Follow the app-server's view of the lane; True when the lane changed."""
    params = event.params
    method = event.method
    lane.last_event_at = now
    if method == TURN_STARTED:
        turn_id = event.turn_id
        if lane.status != Lane.Status.ARCHIVED:
            lane.status = Lane.Status.BUSY
        lane.active_turn_id = turn_id
        if lane.latest_turn_id != turn_id:
            lane.latest_turn_id = turn_id
            lane.latest_turn_status = "started"
            lane.latest_error = ""
            lane.latest_error_at = None
    elif method == TURN_COMPLETED:
        turn = params.get("turn") or {}
        status = turn.get("status") or "completed"
        if lane.active_turn_id in ("", event.turn_id):
            lane.active_turn_id = ""
        lane.latest_turn_id = event.turn_id or lane.latest_turn_id
        lane.latest_turn_status = status
        error = turn.get("error") or {}
        # A turn the worker found gone (lanes.worker.recovery.lost_turn_event)
        # was cut off by a crash or a restart, not stopped by anyone: it
        # says why, and does not hold the queue.
        recovery = params.get(RECOVERY_KEY)
        lost = (
            status == "interrupted"
            and isinstance(recovery, dict)
            and recovery.get("cause") != GAP_CAUSE
        )
        if status == "failed" or lost:
            lane.latest_error = (
                (error.get("message") if isinstance(error, dict) else str(error))
                or lane.latest_error
                or "turn failed"
            )
            lane.latest_error_at = now
        if lane.status != Lane.Status.ARCHIVED:
            lane.status = Lane.Status.ERROR if status == "failed" else Lane.Status.IDLE
        lane.queue_held = status != "completed" and not lost
    elif method == "thread/status/changed":
        status = params.get("status") or {}
        kind = status.get("type")
        flags = status.get("activeFlags") or []
        if lane.status == Lane.Status.ARCHIVED:
            pass
        elif kind == "active":
            lane.status = (
                Lane.Status.WAITING_APPROVAL
                if "waitingOnApproval" in flags
                else Lane.Status.BUSY
            )
        elif kind == "idle" and lane.status in (
            Lane.Status.BUSY,
            Lane.Status.WAITING_APPROVAL,
            Lane.Status.UNKNOWN,
        ):
            lane.status = Lane.Status.IDLE
        elif kind == "systemError":
            lane.status = Lane.Status.ERROR
    elif method == "error":
        error = params.get("error") or {}
        if not params.get("willRetry"):
            lane.latest_error = (
                error.get("message", "") if isinstance(error, dict) else str(error)
            )
            lane.latest_error_at = now
    elif method == "thread/archived":
        lane.status = Lane.Status.ARCHIVED
    elif method == "thread/unarchived":
        lane.status = Lane.Status.IDLE
    elif method == "thread/goal/updated":
        lane.goal = params.get("goal")
    elif method == "thread/goal/cleared":
        lane.goal = None
    elif method in APPROVAL_METHODS:
        if lane.status != Lane.Status.ARCHIVED:
            lane.status = Lane.Status.WAITING_APPROVAL
    return True


# -- services and recovery: one UPDATE each ----------------------------------------


def lane_mark_turn_started(*, lane_id: int, turn_id: str) -> None:
    """Mark busy unless the journal already saw this turn.

    By the time turn/start answers, the journal may have seen the turn start,
    end, and later turns begin (a queued message, a goal continuation); a
    check on latest_turn_id alone would then resurrect a finished turn. One
    conditional UPDATE keeps the check and the write atomic.
    """
    journaled = LaneEvent.objects.filter(
        thread_id=OuterRef("thread_id"),
        turn_id=turn_id,
        method__in=(TURN_STARTED, TURN_COMPLETED),
    )
    Lane.objects.filter(pk=lane_id).exclude(Exists(journaled)).update(
        status=Lane.Status.BUSY,
        active_turn_id=turn_id,
        latest_turn_id=turn_id,
        latest_turn_status="started",
        latest_error="",
        latest_error_at=None,
    )


def lane_mark_turn_request_failed(*, lane_id: int, error: str) -> None:
    """The app-server refused turn/start: no turn runs, and the lane says why.

    The latest turn is left as it ended: the refusal started none, so
    marking it `failed` would rewrite a turn that may have completed.
    """
    Lane.objects.filter(pk=lane_id).exclude(status=Lane.Status.ARCHIVED).update(
        status=Lane.Status.ERROR,
        latest_error=error[:2000],
        latest_error_at=timezone.now(),
    )


def lane_latest_turn_set(
    *, lane_id: int, turn_id: str, status: str, error: str, at: datetime
) -> None:
    """The newest turn as codex reports it, for a lane the journal did not follow."""
    Lane.objects.filter(pk=lane_id).update(
        latest_turn_id=turn_id,
        latest_turn_status=status,
        latest_error=error[:2000],
        latest_error_at=at if error else None,
    )


def lane_mark_archived(*, lane_id: int) -> None:
    Lane.objects.filter(pk=lane_id).update(status=Lane.Status.ARCHIVED)


def lane_mark_restored(*, lane_id: int, status: str) -> None:
    """Unarchived, with the status codex reports (idle when it is not ours)."""
    if status not in Lane.Status.values:
        status = Lane.Status.IDLE
    Lane.objects.filter(pk=lane_id).update(status=status)


def lane_mark_rolled_back(*, lane_id: int) -> None:
    Lane.objects.filter(pk=lane_id).update(status=Lane.Status.IDLE)


def lanes_mark_turns_lost(*, host: str, reason: str) -> int:
    """Turns that were running in a dead app-server are over: say so.

    They do not hold the queue: the operator did not stop them, and the
    queued work should continue once the app-server is back.
    """
    now = timezone.now()
    lost = (
        Lane.objects.filter(host=host)
        .exclude(active_turn_id="")
        .exclude(status=Lane.Status.ARCHIVED)
    )
    count = lost.update(
        active_turn_id="",
        latest_turn_status="interrupted",
        latest_error=reason,
        latest_error_at=now,
        status=Lane.Status.IDLE,
    )
    Lane.objects.filter(
        host=host, status__in=[Lane.Status.BUSY, Lane.Status.WAITING_APPROVAL]
    ).update(status=Lane.Status.IDLE)
    return count
