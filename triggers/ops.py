"""Trigger ops: add, list, get, history, pause, resume, rm, fire, rotate-secret."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from triggers import services
from triggers.models import Trigger
from triggers.presenters import trigger_view

READ, WRITE, DESTROY = (
    "dispatch_trigger_read",
    "dispatch_trigger_write",
    "dispatch_trigger_destroy",
)
When = Literal[
    "interval", "cron", "idle_for", "turn_completed", "approval_pending", "webhook"
]
Action = Literal["send", "steer", "queue", "context", "interject"]
TRIGGER = "trigger id (or name)"


class TriggerOut(OpOutput):
    id: str
    name: str
    lane: str
    when: str
    action: str
    text: str
    enabled: bool
    paused_reason: str | None
    next_due_at: str | None
    last_outcome: str | None
    fired_count: int
    consecutive_failures: int
    guards: dict[str, Any]


class TriggerAddOut(TriggerOut):
    secret: str | None = Field(
        None, description="webhook HMAC secret: shown only here and by rotate-secret"
    )


class TriggerAddIn(OpInput):
    name: str = Field(description="unique name")
    lane: str = Field(description="target lane: ref, thread id or @handle")
    when: When = Field(
        description="interval|cron|idle_for|turn_completed|approval_pending|webhook"
    )
    action: Action = Field(description="send|steer|queue|context|interject")
    text: str = Field(description="text to deliver; {{ name }} placeholders allowed")
    seconds: int | None = Field(
        None, ge=1, description="interval / idle_for period in seconds"
    )
    cron: str | None = Field(None, description='cron expression "m h dom mon dow"')
    tz: str = Field("UTC", description="IANA time zone of --cron")
    on: str | None = Field(None, description="event kinds: the lane watched")
    turn_status: Literal["completed", "failed", "interrupted", "any"] = Field(
        "completed", description="turn_completed: which ending fires"
    )
    idle_only: bool = Field(False, description="skip while the lane has a turn")
    min_interval: int | None = Field(
        None, ge=1, description="skip within S seconds of the last firing"
    )
    dedupe: bool = Field(False, description="skip when the text equals the last one")
    max_firings: int | None = Field(None, ge=1, description="pause after N firings")
    until: str | None = Field(None, description="ISO time after which nothing fires")
    catch_up: Literal["once", "skip"] = Field(
        "once", description="slots missed while down: one firing, or none"
    )
    max_failures: int = Field(5, ge=1, description="pause after N failures in a row")
    max_chain: int = Field(
        3, ge=0, description="pause after reacting to its own turns N times in a row"
    )


@define_op(
    id="trigger-add",
    summary="add a trigger: when -> action -> lane",
    intent="write",
    idempotent=False,
    input=TriggerAddIn,
    output=TriggerAddOut,
    cli="trigger add",
    http=("POST", "/triggers"),
    mcp_tool=WRITE,
    mcp_action="add",
)
def trigger_add(data: TriggerAddIn, origin: Origin) -> dict[str, Any]:
    spec = services.TriggerSpec(**data.model_dump())
    trigger = services.trigger_create(spec=spec, origin=origin)
    return {**trigger_view(trigger), "secret": trigger.secret or None}


class NoInput(OpInput):
    pass


class TriggerListOut(OpOutput):
    triggers: list[TriggerOut]


@define_op(
    id="trigger-list",
    summary="list triggers",
    intent="read",
    idempotent=True,
    input=NoInput,
    output=TriggerListOut,
    cli="trigger list",
    http=("GET", "/triggers"),
    mcp_tool=READ,
    mcp_action="list",
)
def trigger_list(data: NoInput, origin: Origin) -> dict[str, Any]:
    rows = Trigger.objects.select_related("lane", "on_lane")
    return {"triggers": [trigger_view(t) for t in rows]}


class TriggerIdIn(OpInput):
    id: str = Field(description=TRIGGER)


@define_op(
    id="trigger-get",
    summary="show one trigger",
    intent="read",
    idempotent=True,
    input=TriggerIdIn,
    output=TriggerOut,
    cli="trigger get",
    positionals=("id",),
    http=("GET", "/triggers/{id}"),
    mcp_tool=READ,
    mcp_action="get",
)
def trigger_get(data: TriggerIdIn, origin: Origin) -> dict[str, Any]:
    return trigger_view(services.trigger_get(data.id))


class HistoryIn(TriggerIdIn):
    limit: int = Field(50, ge=1, le=1000, description="most recent firings")


class FiringOut(OpOutput):
    id: int
    slot: str
    slot_at: str
    reason: str
    outcome: str
    detail: str
    turn_id: str | None
    lateness_s: float | None


class HistoryOut(OpOutput):
    id: str
    name: str
    firings: list[FiringOut]


@define_op(
    id="trigger-history",
    summary="a trigger's firings, newest first: fired, skipped (guard) or failed",
    intent="read",
    idempotent=True,
    input=HistoryIn,
    output=HistoryOut,
    cli="trigger history",
    positionals=("id",),
    http=("GET", "/triggers/{id}/history"),
    mcp_tool=READ,
    mcp_action="history",
)
def trigger_history(data: HistoryIn, origin: Origin) -> dict[str, Any]:
    trigger = services.trigger_get(data.id)
    firings = trigger.firings.order_by("-id")[: data.limit]
    return {
        "id": trigger.id,
        "name": trigger.name,
        "firings": [f.as_dict() for f in firings],
    }


@define_op(
    id="trigger-pause",
    summary="pause a trigger",
    intent="write",
    idempotent=True,
    input=TriggerIdIn,
    output=TriggerOut,
    cli="trigger pause",
    positionals=("id",),
    http=("POST", "/triggers/{id}/pause"),
    mcp_tool=WRITE,
    mcp_action="pause",
)
def trigger_pause(data: TriggerIdIn, origin: Origin) -> dict[str, Any]:
    trigger = services.trigger_get(data.id)
    return trigger_view(services.trigger_pause(trigger=trigger, origin=origin))


@define_op(
    id="trigger-resume",
    summary="resume a paused trigger (missed slots are not caught up)",
    intent="write",
    idempotent=True,
    input=TriggerIdIn,
    output=TriggerOut,
    cli="trigger resume",
    positionals=("id",),
    http=("POST", "/triggers/{id}/resume"),
    mcp_tool=WRITE,
    mcp_action="resume",
)
def trigger_resume(data: TriggerIdIn, origin: Origin) -> dict[str, Any]:
    trigger = services.trigger_get(data.id)
    return trigger_view(services.trigger_resume(trigger=trigger, origin=origin))


class RemovedOut(OpOutput):
    id: str
    removed: bool


@define_op(
    id="trigger-rm",
    summary="remove a trigger and its firing history",
    intent="destroy",
    idempotent=True,
    input=TriggerIdIn,
    output=RemovedOut,
    cli="trigger rm",
    positionals=("id",),
    http=("DELETE", "/triggers/{id}"),
    mcp_tool=DESTROY,
    mcp_action="rm",
)
def trigger_rm(data: TriggerIdIn, origin: Origin) -> dict[str, Any]:
    trigger = services.trigger_get(data.id)
    trigger_id = trigger.id
    services.trigger_destroy(trigger=trigger, origin=origin)
    return {"id": trigger_id, "removed": True}


class FireOut(OpOutput):
    id: str
    firing: FiringOut


@define_op(
    id="trigger-fire",
    summary="fire a trigger once now, through the ledger and its guards",
    intent="write",
    idempotent=False,
    input=TriggerIdIn,
    output=FireOut,
    cli="trigger fire",
    positionals=("id",),
    http=("POST", "/triggers/{id}/fire"),
    mcp_tool=WRITE,
    mcp_action="fire",
)
def trigger_fire(data: TriggerIdIn, origin: Origin) -> dict[str, Any]:
    trigger = services.trigger_get(data.id)
    firing = services.trigger_fire(trigger=trigger, origin=origin)
    return {"id": trigger.id, "firing": firing.as_dict()}


@define_op(
    id="trigger-rotate-secret",
    summary="replace a webhook trigger's secret (the old one stops working)",
    intent="write",
    idempotent=False,
    input=TriggerIdIn,
    output=TriggerAddOut,
    cli="trigger rotate-secret",
    positionals=("id",),
    http=("POST", "/triggers/{id}/rotate-secret"),
    mcp_tool=WRITE,
    mcp_action="rotate_secret",
)
def trigger_rotate_secret(data: TriggerIdIn, origin: Origin) -> dict[str, Any]:
    trigger = services.trigger_get(data.id)
    trigger = services.trigger_rotate_secret(trigger=trigger, origin=origin)
    return {**trigger_view(trigger), "secret": trigger.secret}
