"""The one write path for lanes. Surfaces parse input and call these."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatchsite.config import load_policy
from dispatchsite.errors import (
    AppServerError,
    AuthorityError,
    DispatchError,
    LaneBusyError,
    NotFoundError,
    ValidationError,
)
from lanes import gateway
from lanes.models import AuditEntry, Lane, ref_payload
from lanes.presenters import ATTACHED_LOCK_REASON, lane_writable
from lanes.queue import queued_message_enqueue, queued_message_pending_count
from lanes.selectors import find_lane
from lanes.turns import text_input, turn_start_params

REF_MIXER = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TURN_END_WAIT_SECONDS = 10.0


def audit_record(
    *, op: str, lane: Lane | str | None = None, outcome: str = "ok", detail: str = "",
    surface: str = "", trigger_id: str = "",
) -> AuditEntry:
    lane_text = lane.ref if isinstance(lane, Lane) else (lane or "")
    return AuditEntry.objects.create(
        op=op, lane=lane_text, outcome=outcome, detail=detail[:500],
        surface=surface, trigger_id=trigger_id,
    )


def lane_ref_allocate(*, thread_id: str) -> str:
    payload = ref_payload(thread_id)
    taken = set(Lane.objects.filter(ref__startswith=payload).values_list("ref", flat=True))
    for mixer in REF_MIXER:
        if payload + mixer not in taken:
            return payload + mixer
    raise DispatchError(f"no free ref for thread {thread_id}")


def lane_title_free(*, title: str, exclude: Lane | None = None) -> None:
    clash = Lane.objects.filter(title=title)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    other = clash.first()
    if other is not None:
        raise ValidationError(
            f"a lane named {title!r} already exists ({other.ref})",
            hint="choose another --name, or rename the existing lane",
        )


def lane_register(
    *, thread_id: str, title: str, source: str, cwd: str, host: str,
    runtime_settings: dict[str, Any] | None = None, model: str = "",
    model_provider: str = "", status: str = Lane.Status.IDLE,
) -> Lane:
    for _attempt in range(3):
        lane = Lane(
            thread_id=thread_id, ref=lane_ref_allocate(thread_id=thread_id),
            title=title, source=source, cwd=cwd, host=host, status=status,
            runtime_settings=runtime_settings or {}, model=model,
            model_provider=model_provider,
        )
        lane.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                lane.save()
            return lane
        except IntegrityError:
            if Lane.objects.filter(thread_id=thread_id).exists():
                return Lane.objects.get(thread_id=thread_id)
            lane_title_free(title=title)
    raise DispatchError(f"could not register thread {thread_id}")


def require_writable(lane: Lane) -> None:
    if not lane_writable(lane, load_policy()):
        raise AuthorityError(
            f"lane {lane.ref} (@{lane.title}) is attached and read-only: {ATTACHED_LOCK_REASON}",
            hint=(
                "set `[policy] allow_attached_writes = true` in "
                f"{settings.DISPATCH_CONFIG_FILE} to allow writes to attached lanes"
            ),
        )
    if lane.status == Lane.Status.ARCHIVED:
        raise ValidationError(
            f"lane {lane.ref} is archived", hint=f"restore it first: `dispatch restore {lane.ref}`"
        )


def rpc(lane: Lane, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
    return gateway.rpc(lane.host, method, params, **kwargs)


def lane_turn_started(*, lane: Lane, turn_id: str) -> None:
    """Mark busy unless the journal already saw this turn (it may have ended)."""
    Lane.objects.filter(pk=lane.pk).exclude(latest_turn_id=turn_id).update(
        status=Lane.Status.BUSY, active_turn_id=turn_id, latest_turn_id=turn_id,
        latest_turn_status="started", latest_error="", latest_error_at=None,
    )
    lane.refresh_from_db()


def lane_turn_request_failed(*, lane: Lane, error: DispatchError, op: str, surface: str) -> None:
    Lane.objects.filter(pk=lane.pk).update(
        status=Lane.Status.ERROR, latest_turn_status="failed",
        latest_error=error.message[:2000], latest_error_at=timezone.now(),
    )
    audit_record(op=op, lane=lane, outcome=error.code, detail=error.message, surface=surface)
    lane.refresh_from_db()


def lane_turn_start(*, lane: Lane, text: str, op: str, surface: str) -> str:
    try:
        result = rpc(lane, "turn/start", turn_start_params(lane, text))
    except DispatchError as exc:
        lane_turn_request_failed(lane=lane, error=exc, op=op, surface=surface)
        raise
    turn_id = result["turn"]["id"]
    lane_turn_started(lane=lane, turn_id=turn_id)
    return turn_id


def goal_set_remote(
    *, lane: Lane, objective: str | None, status: str | None = None,
    token_budget: int | None = None,
) -> dict[str, Any] | None:
    params: dict[str, Any] = {"threadId": lane.thread_id}
    if objective is not None:
        params["objective"] = objective
    if status is not None:
        params["status"] = status
    if token_budget is not None:
        params["tokenBudget"] = token_budget
    goal = rpc(lane, "thread/goal/set", params).get("goal")
    Lane.objects.filter(pk=lane.pk).update(goal=goal)
    lane.goal = goal
    return goal


def lane_create(
    *, name: str, cwd: str, text: str | None, goal: str | None, send: bool,
    model: str | None, sandbox: str | None, approval_policy: str | None,
    effort: str | None, surface: str,
) -> dict[str, Any]:
    """Start a thread, register it as an owned lane, set its goal, send its text."""
    if text is not None and text.lstrip().startswith("/goal") and goal is None:
        raise ValidationError(
            "slash commands are not interpreted: `--text \"/goal ...\"` would only look goal-driven",
            hint="pass the objective with --goal (or --goal-file) instead",
        )
    if not name.strip():
        raise ValidationError("--name must not be empty", hint="pass --name NAME")
    lane_title_free(title=name)
    host = settings.DISPATCH_HOST
    runtime = {
        key: value for key, value in {
            "model": model, "sandbox": sandbox, "approval_policy": approval_policy,
            "effort": effort,
        }.items() if value
    }
    start: dict[str, Any] = {"cwd": cwd}
    if model:
        start["model"] = model
    if sandbox:
        start["sandbox"] = sandbox
    if approval_policy:
        start["approvalPolicy"] = approval_policy
    started = gateway.rpc(host, "thread/start", start)
    thread = started["thread"]
    lane = lane_register(
        thread_id=thread["id"], title=name, source=Lane.Source.OWN,
        cwd=started.get("cwd") or cwd, host=host, runtime_settings=runtime,
        model=started.get("model") or "", model_provider=started.get("modelProvider") or "",
    )
    audit_record(op="new", lane=lane, detail=name, surface=surface)
    try:
        rpc(lane, "thread/name/set", {"threadId": lane.thread_id, "name": name})
    except DispatchError:
        pass  # the lane works without the name; the title stays ours
    message_accepted = False
    goal_set = False
    will_send = send and bool(text)
    if goal is not None:
        # An active goal starts a turn on its own; a first message sent after
        # it would become a steer and lose its per-turn settings. So the goal
        # waits (paused) until the first turn has started.
        goal_set_remote(lane=lane, objective=goal, status="paused" if (will_send or not send) else "active")
        goal_set = True
    if will_send:
        assert text is not None
        lane_turn_start(lane=lane, text=text, op="new", surface=surface)
        message_accepted = True
        if goal is not None:
            goal_set_remote(lane=lane, objective=None, status="active")
    lane.refresh_from_db()
    return {"lane": lane, "message_accepted": message_accepted, "goal_set": goal_set}


def intro_footer(*, caller_thread_id: str | None) -> str:
    if not caller_thread_id:
        raise ValidationError(
            "--intro needs CODEX_THREAD_ID (the sending Codex thread)",
            hint="run from inside a managed Codex lane, or drop --intro",
        )
    sender = Lane.objects.filter(thread_id=caller_thread_id).first()
    if sender is None:
        raise ValidationError(
            f"--intro: the calling thread {caller_thread_id} is not a managed lane",
            hint="attach it first with `dispatch attach <thread-id>`",
        )
    return (
        f"\n\ndispatch (dm): [@{sender.title}](codex://threads/{sender.thread_id}) "
        f"`{sender.ref}`\n↳ reply `dispatch send {sender.ref} \"...\"`"
    )


def wait_turn_end(*, lane: Lane, turn_id: str, timeout: float = TURN_END_WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lane.refresh_from_db(fields=["active_turn_id", "status", "latest_turn_status"])
        if lane.active_turn_id != turn_id:
            return
        time.sleep(0.02)
    raise AppServerError(
        f"turn {turn_id} of lane {lane.ref} did not end within {timeout:g} s after the interrupt"
    )


def lane_send(
    *, lane: Lane, text: str, mode: str, caller_thread_id: str | None = None,
    intro: bool = False, surface: str,
) -> dict[str, Any]:
    """Deliver text to a lane in one of five modes; returns the ack fields."""
    require_writable(lane)
    if not text.strip():
        raise ValidationError("message text is empty", hint="pass the text to send")
    if intro:
        text += intro_footer(caller_thread_id=caller_thread_id)
    if mode == "send":
        turn_id = lane_turn_start(lane=lane, text=text, op="send", surface=surface)
        audit_record(op="send", lane=lane, detail=text[:120], surface=surface)
        return {"op": "send", "detail": f"turn {turn_id} started", "turn_id": turn_id}
    if mode == "steer":
        active = lane.active_turn_id
        if not active:
            raise ValidationError(
                f"lane {lane.ref} has no active turn to steer",
                hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
            )
        result = rpc(lane, "turn/steer", {
            "threadId": lane.thread_id, "expectedTurnId": active, "input": text_input(text),
        })
        audit_record(op="steer", lane=lane, detail=text[:120], surface=surface)
        return {"op": "steer", "detail": f"steered turn {active}", "turn_id": result.get("turnId", active)}
    if mode == "context":
        rpc(lane, "thread/inject_items", {
            "threadId": lane.thread_id,
            "items": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": text}]}],
        })
        audit_record(op="brief", lane=lane, detail=text[:120], surface=surface)
        return {"op": "brief", "detail": "context injected; no turn started", "turn_id": None}
    if mode == "interject":
        active = lane.active_turn_id
        if not active:
            raise ValidationError(
                f"lane {lane.ref} has no active turn to interject into",
                hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
            )
        rpc(lane, "turn/interrupt", {"threadId": lane.thread_id, "turnId": active})
        audit_record(op="interrupt", lane=lane, detail="interject", surface=surface)
        wait_turn_end(lane=lane, turn_id=active)
        turn_id = lane_turn_start(lane=lane, text=text, op="interject", surface=surface)
        audit_record(op="interject", lane=lane, detail=text[:120], surface=surface)
        return {"op": "interject", "detail": f"interrupted {active}; turn {turn_id} started", "turn_id": turn_id}
    if mode == "queue":
        message = queued_message_enqueue(lane=lane, text=text)
        audit_record(op="queue", lane=lane, detail=f"queued message {message.pk}", surface=surface)
        lane.refresh_from_db()
        if lane.status == Lane.Status.IDLE and not lane.queue_held:
            gateway.notify_worker(lane.host, {"type": "appserver.drain", "thread_id": lane.thread_id})
        pending = queued_message_pending_count(lane=lane)
        return {"op": "queue", "detail": f"queued message {message.pk}; pending={pending}",
                "turn_id": None, "queued_message_id": message.pk}
    raise ValidationError(f"unknown send mode {mode!r}", hint="use send|steer|queue|interject|context")


def lane_stop(*, lane: Lane, surface: str) -> dict[str, Any]:
    require_writable(lane)
    active = lane.active_turn_id
    if not active:
        raise ValidationError(f"lane {lane.ref} has no active turn to stop", hint="nothing to do")
    rpc(lane, "turn/interrupt", {"threadId": lane.thread_id, "turnId": active})
    audit_record(op="stop", lane=lane, detail=f"interrupted {active}", surface=surface)
    return {"op": "stop", "detail": f"interrupted turn {active}", "turn_id": active}


def lane_busy_check(lane: Lane) -> None:
    if lane.active_turn_id:
        raise LaneBusyError(
            f"lane {lane.ref} has an active turn ({lane.active_turn_id})",
            hint=f"wait for it, or stop it with `dispatch stop {lane.ref}`",
        )


def lane_or_thread(selector: str) -> tuple[Lane | None, str]:
    """A managed lane, or a raw thread id for the verbs that accept one."""
    lane = find_lane(selector)
    if lane is not None:
        return lane, lane.thread_id
    if selector.startswith("@"):
        raise NotFoundError(f"no managed lane has handle {selector}", hint="see `dispatch list`")
    return None, selector
