"""Running firings: claim, check the guards, deliver, record the outcome.

Firings are claimed by a conditional UPDATE (pending -> running), so a
duplicated task, a retried task or a second beat never runs a slot twice.
Delivery goes through the same lane service as `dispatch send`, with the
trigger as origin: authority, active-turn rules and the audit log apply.

A task runs a batch (every firing of one slot). Deliveries happen one by
one outside any transaction (they wait on the worker, which journals into
the same database); the bookkeeping (outcome, counters, audit row) is
written in one transaction per FLUSH_SECONDS, so a thousand firings a
second cost a few commits, not thousands. A process that dies before a
flush leaves its firings `running`; the tick marks them failed, never
retried, since the message may have gone out.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dispatchsite.core.errors import DispatchError
from lanes.models import Lane
from lanes.services import lane_send
from lanes.services.audit import audit_record
from triggers.models import Trigger, TriggerFiring
from triggers.services.guards import guard_problem, render_context
from triggers.services.manage import trigger_origin, trigger_pause_self
from triggers.templates import render

log = logging.getLogger(__name__)
Outcome = TriggerFiring.Outcome
FLUSH_SECONDS = 0.2


@dataclass
class Result:
    firing: TriggerFiring
    outcome: str
    detail: str
    # When this firing's own guards and delivery began (the claim stamped
    # the whole batch), and when it ended.
    started_at: datetime
    finished_at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


def firings_claim(*, firing_ids: list[int], now: datetime) -> list[TriggerFiring]:
    """Claim the pending ones among `firing_ids`; the others ran elsewhere."""
    token = f"claimed:{uuid.uuid4().hex}"
    TriggerFiring.objects.filter(pk__in=firing_ids, outcome=Outcome.PENDING).update(
        outcome=Outcome.RUNNING, started_at=now, detail=token
    )
    firings = list(
        TriggerFiring.objects.filter(pk__in=firing_ids, detail=token)
        .select_related("trigger__lane")
        .order_by("slot_at", "id")
    )
    # One object per trigger and per lane, so a delivery's effect (a lane
    # turned busy, a counter) is seen by the next firing in the batch.
    triggers: dict[str, Trigger] = {}
    lanes: dict[int, Lane] = {}
    for firing in firings:
        trigger = triggers.setdefault(firing.trigger_id, firing.trigger)
        trigger.lane = lanes.setdefault(trigger.lane_id, trigger.lane)
        firing.trigger = trigger
    return firings


def firings_run(
    *, firing_ids: list[int], now: datetime | None = None
) -> list[TriggerFiring]:
    """Run the pending firings among `firing_ids` once each, in slot order."""
    started = now or timezone.now()
    results: list[Result] = []
    flushed_at = time.monotonic()
    firings = firings_claim(firing_ids=firing_ids, now=started)
    for firing in firings:
        at = now or timezone.now()
        try:
            outcome, detail, fields = deliver(firing.trigger, firing, at)
        except Exception as exc:  # a broken firing must never stop the scheduler
            log.exception("trigger %s firing %s crashed", firing.trigger_id, firing.pk)
            outcome, detail, fields = Outcome.FAILED, f"internal: {exc!r}", {}
        result = Result(firing, outcome, detail, at, now or timezone.now(), fields)
        trigger_note(firing.trigger, result)
        results.append(result)
        if time.monotonic() - flushed_at >= FLUSH_SECONDS:
            results_record(results)
            results, flushed_at = [], time.monotonic()
    results_record(results)
    return firings


def firing_run(*, firing_id: int, now: datetime | None = None) -> TriggerFiring | None:
    """Run one pending firing; None when another run already claimed it."""
    ran = firings_run(firing_ids=[firing_id], now=now)
    return ran[0] if ran else None


def deliver(
    trigger: Trigger, firing: TriggerFiring, now: datetime
) -> tuple[str, str, dict[str, Any]]:
    lane = trigger.lane
    if trigger.idle_only:
        lane.refresh_from_db(fields=["status", "active_turn_id"])
    guard, why = guard_problem(trigger, firing, lane, now)
    if guard.startswith("pause:"):
        trigger_pause_self(trigger=trigger, reason=why)
        return Outcome.SKIPPED, f"{guard[6:]}: {why}; trigger paused", {}
    if guard:
        return Outcome.SKIPPED, f"{guard}: {why}", {}
    text = render(trigger.text, render_context(trigger, firing, now))
    if trigger.dedupe and text == trigger.last_delivered_text:
        return Outcome.SKIPPED, "dedupe: same text as the last delivered firing", {}
    if not text.strip():
        return Outcome.SKIPPED, "empty: the text rendered empty", {"text": text}
    try:
        result = lane_send(
            lane=lane, text=text, mode=trigger.action, origin=trigger_origin(trigger)
        )
    except DispatchError as exc:
        return Outcome.FAILED, f"{exc.code}: {exc.message}", {"text": text}
    fields = {
        "text": text,
        "turn_id": result.get("turn_id") or "",
        "queued_message_id": result.get("queued_message_id"),
    }
    return Outcome.FIRED, str(result.get("detail") or result.get("op")), fields


def trigger_note(trigger: Trigger, result: Result) -> None:
    """The trigger's counters in memory, for the next guard in this batch;
    limits reached pause it now."""
    firing = result.firing
    firing.outcome, firing.detail = result.outcome, result.detail
    firing.started_at = result.started_at
    for name, value in result.fields.items():
        setattr(firing, name, value)
    trigger.last_outcome = result.outcome
    if result.outcome == Outcome.FIRED:
        trigger.fired_count += 1
        trigger.consecutive_failures = 0
        trigger.last_fired_at = result.finished_at
        trigger.last_delivered_text = firing.text
        if (
            trigger.max_firings is not None
            and trigger.fired_count >= trigger.max_firings
        ):
            trigger_pause_self(
                trigger=trigger,
                reason=f"fired {trigger.fired_count} times (--max-firings)",
            )
    elif result.outcome == Outcome.FAILED:
        trigger.consecutive_failures += 1
        if trigger.consecutive_failures >= trigger.max_failures:
            trigger_pause_self(
                trigger=trigger,
                reason=(
                    f"{trigger.consecutive_failures} failed firings in a row "
                    f"(--max-failures {trigger.max_failures}); last: {result.detail}"
                ),
            )


def results_record(results: list[Result]) -> None:
    """Outcomes, trigger counters and audit rows of a batch: one commit."""
    if not results:
        return
    with transaction.atomic():
        for result in results:
            firing = result.firing
            TriggerFiring.objects.filter(pk=firing.pk).update(
                outcome=result.outcome,
                detail=result.detail[:2000],
                started_at=result.started_at,
                finished_at=result.finished_at,
                chain=firing.chain,
                **result.fields,
            )
            counters: dict[str, Any] = {"last_outcome": result.outcome}
            if result.outcome == Outcome.FIRED:
                counters.update(
                    fired_count=F("fired_count") + 1,
                    consecutive_failures=0,
                    last_fired_at=result.finished_at,
                    last_delivered_text=firing.text,
                )
            elif result.outcome == Outcome.FAILED:
                counters["consecutive_failures"] = F("consecutive_failures") + 1
            Trigger.objects.filter(pk=firing.trigger_id).update(**counters)
            audit_record(
                op="trigger-fire",
                lane=firing.trigger.lane,
                outcome=result.outcome,
                detail=(
                    f"firing {firing.pk} ({firing.reason} {firing.slot_key}): "
                    f"{result.detail}"
                ),
                origin=trigger_origin(firing.trigger),
            )
