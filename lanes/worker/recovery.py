"""What the worker does when it or its app-server (re)starts: the lanes to
resume, in-flight queue rows, and turns the old app-server took with it
(its lease on the host is lanes.worker.lease)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.utils import timezone

from lanes.appserver.client import AppServerClient
from lanes.appserver.protocol import THREAD_TURNS_LIST, TURN_COMPLETED
from lanes.journal.lane_state import RECOVERY_KEY
from lanes.models import Lane, QueuedMessage

# Statuses a turn can end with (turn/completed); anything else read back
# for a turn that is gone (inProgress in a fresh app-server) means it was cut.
FINAL_TURN_STATUSES = ("completed", "failed", "interrupted")
# Reading a lost turn's final status back must not hold up a restart long.
READ_BACK_SECONDS = 5.0

log = logging.getLogger("dispatch.worker")


def lanes_to_resume(*, host: str) -> list[str]:
    # Attached lanes stay observe-only: resuming them here would make this
    # app-server a second writer of a thread another process owns.
    return list(
        Lane.objects.filter(host=host, source=Lane.Source.OWN)
        .exclude(status=Lane.Status.ARCHIVED)
        .values_list("thread_id", flat=True)
    )


def in_flight_messages(*, host: str) -> list[dict[str, Any]]:
    return [
        {
            "pk": m.pk,
            "thread_id": m.lane.thread_id,
            "client_message_id": str(m.client_message_id),
        }
        for m in QueuedMessage.objects.filter(
            status=QueuedMessage.Status.SENDING, lane__host=host
        ).select_related("lane")
    ]


def in_flight_settle(*, pk: int, delivered: bool) -> None:
    """Never send twice: a message the thread already holds counts as sent."""
    status = QueuedMessage.Status.SENT if delivered else QueuedMessage.Status.PENDING
    QueuedMessage.objects.filter(pk=pk, status=QueuedMessage.Status.SENDING).update(
        status=status
    )


def lost_turns(*, host: str) -> list[tuple[str, str, bool]]:
    """(thread_id, turn_id, owned) of turns seen to start and never end.

    Called when the app-server they ran in is gone: an owned lane's turn
    cannot still be running.
    """
    return [
        (thread_id, turn_id, source == Lane.Source.OWN)
        for thread_id, turn_id, source in Lane.objects.filter(host=host)
        .exclude(active_turn_id="")
        .exclude(status=Lane.Status.ARCHIVED)
        .values_list("thread_id", "active_turn_id", "source")
    ]


async def lost_turn_events(
    client: AppServerClient | None,
    lost: list[tuple[str, str, bool]],
    *,
    reason: str,
) -> list[dict[str, Any]]:
    """A turn/completed for each lost turn, its status read back when `client`.

    An attached lane's turn runs in the Codex process that owns the thread,
    which may still be running it: it is closed only when codex reports a
    final status.
    """
    turns = await asyncio.gather(
        *(turn_read_back(client, thread_id, turn_id) for thread_id, turn_id, _ in lost)
    )
    return [
        lost_turn_event(
            thread_id=thread_id, turn_id=turn_id, read_back=turn, reason=reason
        )
        for (thread_id, turn_id, owned), turn in zip(lost, turns, strict=True)
        if owned or (turn is not None and turn.get("status") in FINAL_TURN_STATUSES)
    ]


def lost_turn_event(
    *,
    thread_id: str,
    turn_id: str,
    read_back: dict[str, Any] | None,
    reason: str,
) -> dict[str, Any]:
    """A turn/completed for a turn that is gone, for the worker's journal.

    Shaped like codex's own so every reader (watch, websockets, the live
    page, the turn index, triggers) closes the turn the same way. The status
    is the one codex reports for the turn (`read_back`, from
    thread/turns/list) when it has a final one; otherwise `interrupted`.
    `dispatchRecovery` says the worker wrote it, why, and where the status
    came from.
    """
    turn: dict[str, Any] = {**(read_back or {}), "id": turn_id}
    turn["items"] = []
    turn["itemsView"] = "notLoaded"
    source = "thread/turns/list" if read_back is not None else "none"
    if turn.get("status") not in FINAL_TURN_STATUSES:
        turn["status"] = "interrupted"
        source = "none"
    if turn["status"] == "interrupted" and not turn.get("error"):
        turn["error"] = {"message": reason}
    turn.setdefault("error", None)
    return {
        "method": TURN_COMPLETED,
        "params": {
            "threadId": thread_id,
            "turn": turn,
            RECOVERY_KEY: {"reason": reason, "source": source},
        },
        "_received_at": timezone.now(),
    }


async def turn_read_back(
    client: AppServerClient | None, thread_id: str, turn_id: str
) -> dict[str, Any] | None:
    """The turn as codex reports it now, or None when it cannot say."""
    for turn in await turns_read_back(client, thread_id) or []:
        if turn.get("id") == turn_id:
            return turn
    return None


async def turns_read_back(
    client: AppServerClient | None, thread_id: str
) -> list[dict[str, Any]] | None:
    """The thread's latest turns as codex reports them (newest first), or None."""
    if client is None:
        return None
    try:
        page = await client.request(
            THREAD_TURNS_LIST,
            {"threadId": thread_id, "limit": 10, "itemsView": "summary"},
            timeout=READ_BACK_SECONDS,
        )
    except Exception as exc:  # e.g. a thread whose rollout is gone
        log.info("turns/list %s: %s", thread_id, exc)
        return None
    return [turn for turn in page.get("data") or [] if isinstance(turn, dict)]
