"""Creating, pausing, resuming and removing triggers. Every change is audited."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from dispatchsite.core.config import load_policy
from dispatchsite.core.errors import NotFoundError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.models import Lane
from lanes.selectors import find_lane
from lanes.services.audit import audit_record
from triggers.models import Trigger, new_secret, new_trigger_id
from triggers.schedule import Spec, cron_problem, first_due, tz_problem
from triggers.templates import TEXT_CAP_BYTES

TIME_KINDS = ("interval", "cron")
EVENT_KINDS = ("turn_completed", "approval_pending")
TURN_STATUSES = ("completed", "failed", "interrupted", "any")


@dataclass(frozen=True)
class TriggerSpec:
    """What `trigger add` asks for, before anything is resolved or stored."""

    name: str
    lane: str
    when: str
    action: str
    text: str
    seconds: int | None = None
    cron: str | None = None
    tz: str = "UTC"
    on: str | None = None
    turn_status: str = "completed"
    idle_only: bool = False
    min_interval: int | None = None
    dedupe: bool = False
    max_firings: int | None = None
    until: str | None = None
    catch_up: str = "once"
    max_failures: int = 5
    max_chain: int = 3


def trigger_origin(trigger: Trigger) -> Origin:
    return Origin(
        surface="trigger", actor=f"trigger:{trigger.id}", trigger_id=trigger.id
    )


def with_trigger(origin: Origin, trigger: Trigger) -> Origin:
    return dataclasses.replace(origin, trigger_id=trigger.id)


def invalid(flag: str, problem: str, hint: str) -> ValidationError:
    return ValidationError(f"{flag}: {problem}", hint=hint, data={"field": flag})


def writable_lane(selector: str, flag: str) -> Lane:
    lane = find_lane(selector)
    if lane is None:
        raise invalid(
            flag, f"no managed lane matches {selector!r}", "see `dispatch list`"
        )
    if not lane.writable(load_policy()):
        raise invalid(
            flag,
            f"lane {lane.ref} is attached and read-only",
            "set `[policy] allow_attached_writes = true` to let triggers write to it",
        )
    if lane.status == Lane.Status.ARCHIVED:
        raise invalid(flag, f"lane {lane.ref} is archived", "restore it first")
    return lane


def parse_until(value: str, now: datetime) -> datetime:
    try:
        until = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise invalid(
            "--until", f"{value!r} is no ISO 8601 time", "e.g. 2030-01-31T18:00:00Z"
        ) from None
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until <= now:
        raise invalid("--until", f"{value} is in the past", "give a future time")
    return until


def check_spec(spec: TriggerSpec) -> None:
    """Refuse a bad spec before anything is stored, naming the flag."""
    if not spec.name.strip():
        raise invalid("--name", "is empty", "name the trigger")
    if Trigger.objects.filter(name=spec.name).exists():
        raise invalid("--name", f"a trigger named {spec.name!r} exists", "pick another")
    if not spec.text.strip():
        raise invalid("--text", "is empty", "pass the text to deliver")
    size = len(spec.text.encode("utf-8"))
    if size > TEXT_CAP_BYTES:
        raise invalid(
            "--text", f"is {size} bytes; the cap is {TEXT_CAP_BYTES}", "shorten it"
        )
    if spec.when in ("interval", "idle_for") and (spec.seconds or 0) < 1:
        raise invalid(
            "--seconds", f"--when {spec.when} needs --seconds >= 1", "e.g. --seconds 60"
        )
    if spec.when == "cron":
        problem = cron_problem(spec.cron or "") if spec.cron else "is required"
        if problem:
            raise invalid("--cron", problem, 'e.g. --cron "*/5 * * * *"')
    if problem := tz_problem(spec.tz):
        raise invalid("--tz", f"{spec.tz!r} {problem}", "e.g. --tz Europe/Paris")
    if spec.turn_status not in TURN_STATUSES:
        raise invalid(
            "--turn-status", f"unknown {spec.turn_status!r}", "|".join(TURN_STATUSES)
        )
    if spec.seconds is not None and spec.when not in ("interval", "idle_for"):
        raise invalid(
            "--seconds", f"does not apply to --when {spec.when}", "drop --seconds"
        )
    if spec.cron and spec.when != "cron":
        raise invalid("--cron", f"does not apply to --when {spec.when}", "drop --cron")
    if spec.on and spec.when not in EVENT_KINDS:
        raise invalid("--on", f"does not apply to --when {spec.when}", "drop --on")
    if spec.max_failures < 1:
        raise invalid("--max-failures", "must be >= 1", "e.g. --max-failures 5")


@transaction.atomic
def trigger_create(
    *, spec: TriggerSpec, origin: Origin, now: datetime | None = None
) -> Trigger:
    """Validate everything, then store the trigger (nothing on any error)."""
    check_spec(spec)
    lane = writable_lane(spec.lane, "--lane")
    on_lane = None
    if spec.when in EVENT_KINDS:
        on_lane = find_lane(spec.on) if spec.on else lane
        if on_lane is None:
            raise invalid("--on", f"no managed lane matches {spec.on!r}", "see list")
    now = now or timezone.now()
    until = parse_until(spec.until, now) if spec.until else None
    trigger = Trigger(
        name=spec.name,
        lane=lane,
        kind=spec.when,
        seconds=spec.seconds if spec.when in ("interval", "idle_for") else None,
        cron=spec.cron or "",
        tz=spec.tz,
        on_lane=on_lane,
        turn_status=spec.turn_status,
        action=spec.action,
        text=spec.text,
        idle_only=spec.idle_only,
        min_interval=spec.min_interval,
        dedupe=spec.dedupe,
        max_firings=spec.max_firings,
        until=until,
        catch_up=spec.catch_up,
        max_failures=spec.max_failures,
        max_chain=spec.max_chain,
        secret=new_secret() if spec.when == "webhook" else "",
        created_at=now,
    )
    if spec.when in TIME_KINDS:
        trigger.next_due_at = first_due(schedule_spec(trigger), now)
    # Ids are 8 hex digits, short enough to type: draw again on a clash.
    while Trigger.objects.filter(pk=trigger.pk).exists():
        trigger.pk = new_trigger_id()
    trigger.save(force_insert=True)
    audit_record(
        op="trigger-add",
        lane=lane,
        detail=f"{trigger.name}: {trigger.kind} -> {trigger.action}",
        origin=with_trigger(origin, trigger),
    )
    return trigger


def schedule_spec(trigger: Trigger) -> Spec:
    return Spec(
        kind=trigger.kind, seconds=trigger.seconds, cron=trigger.cron, tz=trigger.tz
    )


def trigger_get(selector: str) -> Trigger:
    """A trigger by id or name, or NotFoundError."""
    found = (
        Trigger.objects.select_related("lane", "on_lane")
        .filter(pk=selector.strip())
        .first()
    ) or Trigger.objects.select_related("lane", "on_lane").filter(name=selector).first()
    if found is None:
        raise NotFoundError(
            f"no trigger {selector!r}", hint="see `dispatch trigger list`"
        )
    return found


def trigger_pause(*, trigger: Trigger, reason: str = "", origin: Origin) -> Trigger:
    why = reason or f"paused ({origin.surface})"
    Trigger.objects.filter(pk=trigger.pk).update(enabled=False, paused_reason=why)
    audit_record(
        op="trigger-pause",
        lane=trigger.lane,
        detail=why,
        origin=with_trigger(origin, trigger),
    )
    trigger.refresh_from_db()
    return trigger


def trigger_pause_self(*, trigger: Trigger, reason: str) -> bool:
    """The trigger stops itself; audited once, by whoever flips it."""
    flipped = Trigger.objects.filter(pk=trigger.pk, enabled=True).update(
        enabled=False, paused_reason=reason
    )
    if flipped:
        audit_record(
            op="trigger-pause",
            lane=trigger.lane,
            outcome="paused",
            detail=reason,
            origin=trigger_origin(trigger),
        )
    trigger.enabled, trigger.paused_reason = False, reason
    return bool(flipped)


def trigger_resume(
    *, trigger: Trigger, origin: Origin, now: datetime | None = None
) -> Trigger:
    """Enable again; slots missed while paused are not caught up."""
    now = now or timezone.now()
    if trigger.lane.status == Lane.Status.ARCHIVED:
        raise ValidationError(
            f"trigger {trigger.id}: lane {trigger.lane.ref} is archived",
            hint=f"restore it first: `dispatch restore {trigger.lane.ref}`",
        )
    fields: dict[str, object] = {
        "enabled": True,
        "paused_reason": "",
        "consecutive_failures": 0,
    }
    if trigger.kind in TIME_KINDS:
        fields["next_due_at"] = first_due(schedule_spec(trigger), now)
    Trigger.objects.filter(pk=trigger.pk).update(**fields)
    audit_record(
        op="trigger-resume",
        lane=trigger.lane,
        detail=trigger.name,
        origin=with_trigger(origin, trigger),
    )
    trigger.refresh_from_db()
    return trigger


def trigger_destroy(*, trigger: Trigger, origin: Origin) -> None:
    audit_record(
        op="trigger-rm",
        lane=trigger.lane,
        detail=trigger.name,
        origin=with_trigger(origin, trigger),
    )
    trigger.delete()


def trigger_rotate_secret(*, trigger: Trigger, origin: Origin) -> Trigger:
    if trigger.kind != Trigger.Kind.WEBHOOK:
        raise ValidationError(
            f"trigger {trigger.id} is a {trigger.kind} trigger; "
            "only webhooks have a secret",
            hint="pass the id of a --when webhook trigger",
        )
    Trigger.objects.filter(pk=trigger.pk).update(secret=new_secret())
    audit_record(
        op="trigger-rotate-secret",
        lane=trigger.lane,
        detail=trigger.name,
        origin=with_trigger(origin, trigger),
    )
    trigger.refresh_from_db()
    return trigger
