"""Journaling while the database refuses writes (disk full, read-only, locked).

The worker keeps its app-server and its turns when a journal write fails:
the batch is held in memory, in arrival order, and retried every
RETRY_SECONDS; later messages wait behind it, so seqs still follow arrival.
Past `limit` held messages new ones are dropped and counted per lane. Once
writes succeed again, every lane that had messages during the outage gets a
`dispatch/journal/gap` event saying how many were written late, how many
were lost (with their methods and turns) and when, so the outage stays in
the record rather than hidden. A dropped turn/started or turn/completed would
leave the lane's turn state wrong until its next event (busy after the turn
ended), so after the gap `reconcile` reads those turns back from the
app-server (lanes.worker.gap_repair) and their events are journaled. `status()`
goes into the worker's state file, which `daemon status` and `doctor` read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from lanes.appserver.protocol import TURN_COMPLETED, TURN_STARTED
from lanes.journal.eventstore import EventRow
from lanes.journal.writer import JournalResult, thread_of, turn_of
from lanes.signals import lane_events_journaled

log = logging.getLogger("dispatch.worker")

JOURNAL_GAP = "dispatch/journal/gap"
# The default hold limit (DISPATCH_JOURNAL_HOLD_LIMIT): about 50 MB of
# typical stream deltas, enough for minutes of busy lanes.
HOLD_LIMIT = 50_000
RETRY_SECONDS = 1.0
BATCH = 2000

Write = Callable[[list[dict[str, Any]]], Awaitable[JournalResult]]
Written = Callable[[JournalResult], Awaitable[None]]


@dataclass
class LostTurns:
    """A lane's turns whose start or end the keeper dropped."""

    # turn id -> {"status", "error"} of the dropped turn/completed, in order
    ends: dict[str, dict[str, Any]] = field(default_factory=dict)
    starts: set[str] = field(default_factory=set)


# Given the lanes' lost turns, the events that put their turn state right.
Reconcile = Callable[[dict[str, LostTurns]], Awaitable[list[dict[str, Any]]]]


@dataclass
class LaneOutage:
    """What one lane's journal missed while writes failed."""

    held: int = 0
    lost: int = 0
    lost_methods: Counter[str] = field(default_factory=Counter)
    lost_turn_ids: set[str] = field(default_factory=set)
    first_lost_at: datetime | None = None
    last_lost_at: datetime | None = None
    turns: LostTurns = field(default_factory=LostTurns)


class JournalKeeper:
    def __init__(
        self,
        *,
        write: Write,
        written: Written,
        limit: int | None = None,
        reconcile: Reconcile | None = None,
    ) -> None:
        self.write_batch = write
        self.written = written
        self.limit = limit or int(
            getattr(settings, "DISPATCH_JOURNAL_HOLD_LIMIT", HOLD_LIMIT)
        )
        self.reconcile = reconcile
        # Lost turns of outages already recorded, until reconciled.
        self.lost_turns: dict[str, LostTurns] = {}
        self.held: deque[dict[str, Any]] = deque()
        self.outage: dict[str, LaneOutage] = {}
        self.error: str | None = None
        self.failing_since: datetime | None = None
        self.last_outage: dict[str, Any] | None = None

    @property
    def failing(self) -> bool:
        return self.error is not None

    async def write(self, batch: list[dict[str, Any]]) -> None:
        """Journal `batch`, or hold it behind earlier ones the DB refused."""
        if self.failing:
            self.hold(batch)
            return
        try:
            result = await self.write_batch(batch)
        except OperationalError as exc:
            self.fail(exc)
            self.hold(batch)
            return
        await self.written(result)

    def fail(self, exc: Exception) -> None:
        if not self.failing:
            log.error("journal writes failing, holding events: %s", exc)
            self.failing_since = timezone.now()
        self.error = str(exc) or exc.__class__.__name__

    def hold(self, batch: list[dict[str, Any]]) -> None:
        for message in batch:
            thread_id = thread_of(message.get("params") or {})
            lane = self.outage.setdefault(thread_id, LaneOutage())
            if len(self.held) < self.limit:
                self.held.append(message)
                lane.held += 1
                continue
            # Full: the newest go, so what is written stays a prefix of
            # what arrived and the gap event marks where the hole is.
            at = message.get("_received_at") or timezone.now()
            method = str(message.get("method", ""))
            params = message.get("params") or {}
            lane.lost += 1
            lane.lost_methods[method] += 1
            if turn := turn_of(params):
                lane.lost_turn_ids.add(turn)
                note_lost_turn(lane.turns, method, turn, params)
            lane.first_lost_at = lane.first_lost_at or at
            lane.last_lost_at = at

    async def retry_loop(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            if self.failing:
                await self.resume()

    async def resume(self) -> None:
        """Write what is held, then the gap events; stop at the first refusal."""
        while self.held:
            chunk = list(islice(self.held, BATCH))
            try:
                result = await self.write_batch(chunk)
            except OperationalError as exc:
                self.error = str(exc) or exc.__class__.__name__
                return
            for _ in chunk:
                self.held.popleft()
            await self.written(result)
        result = JournalResult()
        if gaps := self.gap_messages():
            try:
                result = await self.write_batch(gaps)
            except OperationalError as exc:
                self.error = str(exc) or exc.__class__.__name__
                return
        if self.outage:
            self.last_outage = self.summary(ended_at=timezone.now())
            for thread_id, lane in self.outage.items():
                if thread_id and (lane.turns.ends or lane.turns.starts):
                    merge_lost_turns(self.lost_turns, thread_id, lane.turns)
            self.outage.clear()
        await self.written(result)
        if self.held:  # arrived meanwhile: written next, recorded by their own gap
            await self.resume()
            return
        log.warning("journal writes resumed: %s", self.last_outage)
        self.error = None
        self.failing_since = None
        await self.repair_turns()

    async def repair_turns(self) -> None:
        """Journal what the app-server says of turns whose start or end was lost."""
        lost, self.lost_turns = self.lost_turns, {}
        if not lost or self.reconcile is None:
            return
        try:
            messages = await self.reconcile(lost)
        except Exception:  # the gap event still names the lost turns
            log.exception("could not reconcile turns lost from the journal")
            return
        if messages:
            await self.write(messages)

    async def stop(self) -> None:
        """A last try at writing what is held; what cannot be is logged."""
        if self.failing:
            await self.resume()
        if self.failing:
            log.error(
                "stopping with %d journal events unwritten: %s",
                len(self.held),
                self.summary(),
            )

    def gap_messages(self) -> list[dict[str, Any]]:
        now = timezone.now()
        since = self.failing_since or now
        messages = []
        for thread_id, lane in self.outage.items():
            if not thread_id:
                continue
            params: dict[str, Any] = {
                "threadId": thread_id,
                "error": self.error,
                "from": since.isoformat(),
                "until": now.isoformat(),
                "writtenLate": lane.held,
                "lost": lane.lost,
                "lostMethods": dict(lane.lost_methods),
                "lostTurnIds": sorted(lane.lost_turn_ids),
                # Read back and journaled next (lanes.worker.gap_repair).
                "lostTurnEnds": list(lane.turns.ends),
            }
            if lane.first_lost_at and lane.last_lost_at:
                params["lostReceivedFrom"] = lane.first_lost_at.isoformat()
                params["lostReceivedUntil"] = lane.last_lost_at.isoformat()
            messages.append(
                {"method": JOURNAL_GAP, "params": params, "_received_at": now}
            )
        return messages

    def summary(self, *, ended_at: datetime | None = None) -> dict[str, Any]:
        return {
            "error": self.error,
            "since": self.failing_since.isoformat() if self.failing_since else None,
            "ended_at": ended_at.isoformat() if ended_at else None,
            "held": len(self.held)
            if ended_at is None
            else sum(lane.held for lane in self.outage.values()),
            "lost": sum(lane.lost for lane in self.outage.values()),
            # e.g. a turn/completed among them: its lane is reconciled after.
            "lost_methods": dict(
                sum((lane.lost_methods for lane in self.outage.values()), Counter())
            ),
            "lanes": sorted(t for t in self.outage if t),
        }

    def status(self) -> dict[str, Any]:
        """For the worker's state file: `daemon status` and `doctor` show it."""
        return {
            "ok": not self.failing,
            "failing": self.summary() if self.failing else None,
            "hold_limit": self.limit,
            "last_outage": self.last_outage,
        }


def note_lost_turn(
    turns: LostTurns, method: str, turn_id: str, params: dict[str, Any]
) -> None:
    if method == TURN_STARTED:
        turns.starts.add(turn_id)
    elif method == TURN_COMPLETED:
        turn = params.get("turn") or {}
        # Only what the end said: the lane's state can be set from it if the
        # app-server cannot be asked.
        turns.ends[turn_id] = {
            "status": turn.get("status"),
            "error": turn.get("error"),
        }


def merge_lost_turns(
    into: dict[str, LostTurns], thread_id: str, turns: LostTurns
) -> None:
    lost = into.setdefault(thread_id, LostTurns())
    lost.ends.update(turns.ends)
    lost.starts |= turns.starts


def announce(rows: list[EventRow]) -> None:
    # A receiver's failure must not stop the journal: it is logged.
    for receiver, outcome in lane_events_journaled.send_robust(
        sender=JournalKeeper, rows=rows
    ):
        if isinstance(outcome, Exception):
            log.error("%r failed on journaled events: %r", receiver, outcome)
