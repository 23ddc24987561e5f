"""Turn state the journal lost while the database refused writes.

Past its hold limit the journal keeper drops the newest events
(lanes.worker.journal_health). When a turn/completed is among them the lane
would stay busy, its turn `inProgress` in the index, until some later event;
a dropped turn/started would show a running turn's lane idle. Once the gap
is recorded the worker asks the app-server how those turns stand
(`thread/turns/list`, as crash recovery does) and journals the missing
event: a turn/completed with the status codex reports (else the one the
dropped event carried), a turn/started for a turn still running. They carry
`dispatchRecovery` with `cause: journal-gap`, so readers know the worker
wrote them and history syncs the turn's items, which were lost too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.utils import timezone

from lanes.appserver.client import AppServerClient
from lanes.appserver.protocol import THREAD_TURNS_LIST, TURN_COMPLETED, TURN_STARTED
from lanes.journal.lane_state import GAP_CAUSE, RECOVERY_KEY
from lanes.journal.writer import IF_TURN_OPEN
from lanes.worker.journal_health import LostTurns
from lanes.worker.recovery import FINAL_TURN_STATUSES, turns_read_back

GAP_REASON = "this turn's events were dropped while the database refused writes"


async def gap_turn_events(
    client: AppServerClient | None, lost: dict[str, LostTurns]
) -> list[dict[str, Any]]:
    """The events that set each lane's turn state as the app-server has it."""
    per_lane = await asyncio.gather(
        *(lane_gap_events(client, thread, turns) for thread, turns in lost.items())
    )
    return [message for messages in per_lane for message in messages]


async def lane_gap_events(
    client: AppServerClient | None, thread_id: str, lost: LostTurns
) -> list[dict[str, Any]]:
    read = {
        str(turn.get("id")): turn
        for turn in await turns_read_back(client, thread_id) or []
    }
    messages = []
    for turn_id, dropped in lost.ends.items():  # in the order they ended
        turn = read.get(turn_id)
        if turn is not None and turn.get("status") in FINAL_TURN_STATUSES:
            messages.append(
                gap_event(TURN_COMPLETED, thread_id, turn, source=THREAD_TURNS_LIST)
            )
        elif dropped.get("status") in FINAL_TURN_STATUSES:
            # The app-server cannot say (restarting, stopping): the dropped
            # event itself said how the turn ended.
            turn = {**dropped, "id": turn_id}
            messages.append(
                gap_event(TURN_COMPLETED, thread_id, turn, source="dropped event")
            )
    for turn_id in lost.starts - set(lost.ends):
        turn = read.get(turn_id)
        # A turn that ended since sends its own turn/completed, which the
        # journal keeps: only one still running is missing its start.
        if turn is not None and turn.get("status") == "inProgress":
            messages.append(
                gap_event(TURN_STARTED, thread_id, turn, source=THREAD_TURNS_LIST)
            )
    return messages


def gap_event(
    method: str, thread_id: str, read_back: dict[str, Any], *, source: str
) -> dict[str, Any]:
    """Shaped like codex's own event, so every reader follows it the same way."""
    turn: dict[str, Any] = {**read_back, "items": [], "itemsView": "notLoaded"}
    turn.setdefault("error", None)
    return {
        "method": method,
        "params": {
            "threadId": thread_id,
            "turn": turn,
            RECOVERY_KEY: {"reason": GAP_REASON, "source": source, "cause": GAP_CAUSE},
        },
        "_received_at": timezone.now(),
        # Written only while the journal has no end for the turn: the real
        # event may have landed while the app-server was being asked.
        IF_TURN_OPEN: True,
    }
