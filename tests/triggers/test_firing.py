"""Claiming and running firings with a fake clock: exactly once, guards,
failures, chains. Deliveries go through lanes.services to a scripted gateway."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from lanes.journal.eventstore import EventRow
from lanes.models import AuditEntry, Lane, QueuedMessage
from lanes.signals import lane_events_journaled
from tests.triggers.conftest import CTX, T0, Codex, add, make_lane, seconds, tick
from triggers.models import Trigger, TriggerFiring
from triggers.services import firing_run, trigger_resume, triggers_claim
from triggers.services.record import events_record

pytestmark = pytest.mark.django_db


def outcomes(trigger: Trigger) -> list[tuple[str, str]]:
    return [(f.outcome, f.detail.split(":")[0]) for f in trigger.firings.order_by("id")]


def test_it_fires_each_slot_once_through_the_lane_services(
    codex: Codex, lane: Lane
) -> None:
    trigger = add(lane, text="tick {{ trigger }} on {{ lane }}")
    for t in (0, 0.5, 1, 2, 2.2, 4):  # duplicated and close ticks
        tick(T0 + seconds(t))
    assert codex.texts() == ["tick t on @work"] * 3  # slots 0, 2, 4
    firings = list(trigger.firings.order_by("id"))
    assert [f.slot_at for f in firings] == [T0, T0 + seconds(2), T0 + seconds(4)]
    assert {f.outcome for f in firings} == {"fired"}
    assert firings[0].turn_id == "turn-1"
    audit = AuditEntry.objects.filter(trigger_id=trigger.id)
    assert {a.op for a in audit} >= {"trigger-add", "send", "trigger-fire"}
    assert {a.surface for a in audit.filter(op="send")} == {"trigger"}


def test_it_never_runs_a_claimed_firing_twice(codex: Codex, lane: Lane) -> None:
    trigger = add(lane)
    claimed = triggers_claim(now=T0)
    again = triggers_claim(now=T0)  # a duplicated beat tick
    ids = [i for ids in claimed.due.values() for i in ids]
    assert len(ids) == 1 and again.count == 0
    assert firing_run(firing_id=ids[0], now=T0) is not None
    assert firing_run(firing_id=ids[0], now=T0) is None  # a retried task
    assert len(codex.texts()) == 1
    assert trigger.firings.count() == 1


def test_it_catches_up_once_after_downtime(codex: Codex, lane: Lane) -> None:
    trigger = add(lane)
    tick(T0)
    ran = tick(T0 + seconds(60.5))  # "down" for a minute
    assert [(f.reason, f.outcome) for f in ran] == [("catch_up", "fired")]
    assert len(codex.texts()) == 2
    assert trigger.firings.count() == 2


def test_it_skips_missed_slots_when_asked(codex: Codex, lane: Lane) -> None:
    trigger = add(lane, catch_up="skip")
    tick(T0)
    tick(T0 + seconds(60.5))
    assert outcomes(trigger)[-1] == ("skipped", "catch_up")
    assert len(codex.texts()) == 1


def test_it_skips_while_the_lane_is_busy_with_idle_only(
    codex: Codex, lane: Lane
) -> None:
    trigger = add(lane, idle_only=True)
    Lane.objects.filter(pk=lane.pk).update(status="busy", active_turn_id="turn-x")
    tick(T0)
    Lane.objects.filter(pk=lane.pk).update(status="idle", active_turn_id="")
    tick(T0 + seconds(2))
    assert [o for o, _ in outcomes(trigger)] == ["skipped", "fired"]
    assert outcomes(trigger)[0][1] == "idle_only"


def test_it_fires_idle_for_once_per_idle_period(codex: Codex, lane: Lane) -> None:
    trigger = add(lane, when="idle_for", seconds=30, text="still there?")
    Lane.objects.filter(pk=lane.pk).update(last_event_at=T0)
    for t in (10, 31, 40, 90):
        tick(T0 + seconds(t))
    assert codex.texts() == ["still there?"]
    # The turn it started ends later: a new idle period begins.
    Lane.objects.filter(pk=lane.pk).update(
        last_event_at=T0 + seconds(100), status="idle", active_turn_id=""
    )
    tick(T0 + seconds(131))
    assert len(codex.texts()) == 2
    assert trigger.firings.count() == 2


def test_it_respects_min_interval(codex: Codex, lane: Lane) -> None:
    trigger = add(lane, seconds=1, min_interval=3)
    for t in range(5):  # slots 0..5 (the last tick claims one ahead)
        tick(T0 + seconds(t))
    assert [o for o, _ in outcomes(trigger)] == [
        "fired",
        "skipped",
        "skipped",
        "fired",
        "skipped",
        "skipped",
    ]
    assert outcomes(trigger)[1][1] == "min_interval"


def test_it_dedupes_against_the_stored_last_text(codex: Codex, lane: Lane) -> None:
    trigger = add(lane, dedupe=True, text="same text")
    tick(T0)
    # Durable: a fresh read of the row, as after a restart, still dedupes.
    assert Trigger.objects.get(pk=trigger.pk).last_delivered_text == "same text"
    tick(T0 + seconds(2))
    assert [o for o, _ in outcomes(trigger)] == ["fired", "skipped"]
    assert outcomes(trigger)[1][1] == "dedupe"


def test_it_pauses_after_max_firings(codex: Codex, lane: Lane) -> None:
    trigger = add(lane, max_firings=2)
    for t in (0, 2, 4, 6):
        tick(T0 + seconds(t))
    trigger.refresh_from_db()
    assert trigger.fired_count == 2 and not trigger.enabled
    assert "--max-firings" in trigger.paused_reason
    assert len(codex.texts()) == 2


def test_it_stops_at_until(codex: Codex, lane: Lane) -> None:
    trigger = add(lane, until=(T0 + seconds(3)).isoformat())
    for t in (0, 2, 4, 6):
        tick(T0 + seconds(t))
    trigger.refresh_from_db()
    assert len(codex.texts()) == 2 and not trigger.enabled
    assert "--until" in trigger.paused_reason


def test_it_pauses_after_max_failures_in_a_row(codex: Codex, lane: Lane) -> None:
    codex.failing["turn/start"] = "app-server error: boom"
    trigger = add(lane, seconds=1, max_failures=3)
    for t in range(6):
        tick(T0 + seconds(t))
    trigger.refresh_from_db()
    assert [o for o, _ in outcomes(trigger)] == ["failed"] * 3
    assert not trigger.enabled
    assert "3 failed firings in a row" in trigger.paused_reason
    assert "boom" in trigger.paused_reason
    # Resuming clears the count and fires again on a fresh schedule.
    codex.failing.clear()
    trigger_resume(trigger=trigger, origin=CTX, now=T0 + seconds(10))
    tick(T0 + seconds(10))
    assert outcomes(trigger)[-1][0] == "fired"


def test_it_pauses_when_its_lane_is_archived(codex: Codex, lane: Lane) -> None:
    trigger = add(lane)
    Lane.objects.filter(pk=lane.pk).update(status="archived")
    tick(T0)
    trigger.refresh_from_db()
    assert not trigger.enabled
    assert "archived" in trigger.paused_reason
    assert outcomes(trigger) == [("skipped", "lane_archived")]
    assert codex.texts() == []


def test_it_delivers_each_action_kind(codex: Codex, lane: Lane) -> None:
    queued = add(lane, name="q", action="queue", text="later", seconds=60)
    context = add(lane, name="c", action="context", text="fyi", seconds=60)
    tick(T0)
    assert QueuedMessage.objects.get().text == "later"
    assert [m for m, _ in codex.calls] == ["thread/inject_items"]
    fired = queued.firings.get()
    assert fired.outcome == "fired" and fired.queued_message_id is not None
    assert context.firings.get().outcome == "fired"


def event(lane: Lane, seq: int, method: str, **params: Any) -> EventRow:
    turn = params.get("turn") or {}
    return EventRow(
        thread_id=lane.thread_id,
        seq=seq,
        method=method,
        params=params,
        turn_id=turn.get("id", ""),
        item_id="",
        request_id=None,
        received_at=T0,
    )


def run_events(rows: list[EventRow]) -> None:
    for firing_id in events_record(rows=rows):
        firing_run(firing_id=firing_id, now=T0)


def test_it_fires_when_a_watched_lane_completes_a_turn(codex: Codex) -> None:
    build, review = make_lane("build"), make_lane("review")
    trigger = add(
        review,
        when="turn_completed",
        on=build.ref,
        text="check build turn {{ turn.status }}",
    )
    done = event(build, 5, "turn/completed", turn={"id": "b1", "status": "completed"})
    failed = event(build, 6, "turn/completed", turn={"id": "b2", "status": "failed"})
    run_events([done, failed])
    run_events([done])  # the same journal row announced again
    assert codex.texts() == ["check build turn completed"]
    assert trigger.firings.count() == 1


def test_it_pauses_a_trigger_reacting_to_its_own_turns(
    codex: Codex, lane: Lane
) -> None:
    trigger = add(lane, when="turn_completed", text="again", max_chain=2)
    run_events(
        [event(lane, 1, "turn/completed", turn={"id": "human", "status": "completed"})]
    )
    for seq in range(2, 6):
        last = trigger.firings.order_by("-id").first()
        assert last is not None
        run_events(
            [
                event(
                    lane,
                    seq,
                    "turn/completed",
                    turn={"id": last.turn_id or "x", "status": "completed"},
                )
            ]
        )
    trigger.refresh_from_db()
    # The human's turn (chain 0), then chains 1 and 2; the third pauses.
    assert [f.chain for f in trigger.firings.order_by("id")] == [0, 1, 2, 3]
    assert outcomes(trigger)[-1] == ("skipped", "max_chain")
    assert not trigger.enabled and "--max-chain 2" in trigger.paused_reason
    assert len(codex.texts()) == 3


def test_it_fires_approval_pending_triggers_from_the_worker_signal(
    codex: Codex, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triggers import queue

    queued: list[list[int]] = []
    monkeypatch.setattr(queue, "enqueue_fire", lambda ids: queued.append(list(ids)))
    watched, boss = make_lane("watched"), make_lane("boss")
    add(
        boss,
        when="approval_pending",
        on=watched.ref,
        text="approve in {{ event.thread_id }}",
    )
    lane_events_journaled.send(
        sender=object,
        rows=[event(watched, 3, "item/commandExecution/requestApproval")],
    )
    assert len(queued) == 1 and codex.calls == []  # the receiver only records
    for firing_id in queued[0]:
        firing_run(firing_id=firing_id, now=T0)
    assert codex.texts() == [f"approve in {watched.thread_id}"]


def test_it_fails_a_firing_cut_off_mid_delivery_and_never_retries_it(
    codex: Codex, lane: Lane
) -> None:
    trigger = add(lane, seconds=3600)
    claimed = triggers_claim(now=T0)
    (firing_id,) = [i for ids in claimed.due.values() for i in ids]
    TriggerFiring.objects.filter(pk=firing_id).update(outcome="running", started_at=T0)
    triggers_claim(now=T0 + seconds(301))
    firing = TriggerFiring.objects.get(pk=firing_id)
    assert firing.outcome == "failed" and firing.detail.startswith("interrupted")
    assert firing_run(firing_id=firing_id) is None
    assert codex.texts() == [] and trigger.firings.count() == 1


def test_it_prunes_old_finished_firings_only(codex: Codex, lane: Lane) -> None:
    from triggers.services.retention import firings_prune

    trigger = add(lane, seconds=3600)
    tick(T0)
    triggers_claim(now=T0 + seconds(3600))  # claimed, still pending
    assert firings_prune(now=T0 + timedelta(days=29)) == 0
    assert firings_prune(now=T0 + timedelta(days=31)) == 1
    assert [f.outcome for f in trigger.firings.all()] == ["pending"]
