"""`new`: a lane with its first turn (and goal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import THREAD_NAME_SET
from lanes.journal.lane_state import lane_mark_turn_request_failed
from lanes.models import Lane
from lanes.services.appserver import rpc
from lanes.services.audit import audit_failures, audit_record
from lanes.services.goals import goal_set_remote
from lanes.services.hosts import host_choose
from lanes.services.messages import lane_turn_start
from lanes.services.registration import lane_register, lane_title_free
from lanes.services.validation import clean_name, thread_settings_check
from lanes.turns import thread_instruction_params, thread_settings_params
from lanes.worker import gateway
from lanes.worker.server_requests import approval_mode_check


def lane_create(
    *,
    name: str,
    cwd: str,
    text: str | None,
    goal: str | None,
    send: bool,
    model: str | None,
    sandbox: str | None,
    approval_policy: str | None,
    effort: str | None,
    origin: Origin,
    base_instructions: str | None = None,
    developer_instructions: str | None = None,
    output_schema: dict[str, Any] | None = None,
    summary: str | None = None,
    thread_extra: dict[str, Any] | None = None,
    before_first_turn: Callable[[Lane], None] | None = None,
    approvals: str | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """Start a thread, register it as an owned lane, set its goal, send its text."""
    if text is not None and text.lstrip().startswith("/goal") and goal is None:
        raise ValidationError(
            'slash commands are not interpreted: `--text "/goal ..."` would only '
            "look goal-driven",
            hint="pass the objective with --goal instead",
        )
    if goal is not None and not goal.strip():
        raise ValidationError("--goal must not be empty", hint="pass an objective")
    name = clean_name(name)
    lane_title_free(title=name)
    host = host_choose(host)
    cwd = (
        thread_settings_check(
            host=host,
            cwd=cwd,
            model=model,
            approval_policy=approval_policy,
            effort=effort,
        )
        or cwd
    )
    runtime: dict[str, Any] = {
        key: value
        for key, value in {
            "model": model,
            "sandbox": sandbox,
            "approval_policy": approval_policy,
            "effort": effort,
        }.items()
        if value
    }
    if approvals:
        # How the worker answers this lane's approvals (overrides [policy]).
        runtime["approvals"] = approval_mode_check(approvals)
    # Per-turn settings every later send reuses (lanes.turns.turn_start_params).
    if output_schema is not None:
        runtime["output_schema"] = output_schema
    if summary:
        runtime["summary"] = summary
    start: dict[str, Any] = {
        "cwd": cwd,
        **thread_settings_params(
            model=model, sandbox=sandbox, approval_policy=approval_policy
        ),
        **thread_instruction_params(
            base=base_instructions, developer=developer_instructions
        ),
        **(thread_extra or {}),
    }
    with audit_failures(op="new", lane=None, origin=origin):
        started = gateway.rpc(host, "thread/start", start)
    thread = started["thread"]
    lane = lane_register(
        thread_id=thread["id"],
        title=name,
        source=Lane.Source.OWN,
        cwd=started.get("cwd") or cwd,
        host=host,
        runtime_settings=runtime,
        model=started.get("model") or "",
        model_provider=started.get("modelProvider") or "",
    )
    audit_record(op="new", lane=lane, detail=name, origin=origin)
    try:
        rpc(lane, THREAD_NAME_SET, {"threadId": lane.thread_id, "name": name})
    except DispatchError:
        pass  # the lane works without the name; the title stays ours
    if before_first_turn is not None:
        # The caller's records and staging; a failure leaves the lane in
        # `error` with no goal and no turn.
        try:
            before_first_turn(lane)
        except DispatchError as exc:
            lane_mark_turn_request_failed(lane_id=lane.pk, error=exc.message)
            raise
    message_accepted = False
    goal_set = False
    will_send = send and bool(text)
    with audit_failures(op="new", lane=lane, origin=origin):
        if goal is not None:
            # An active goal starts a turn on its own, and a first message
            # sent after it would become a steer of that turn (losing its
            # per-turn settings). So the goal is created paused, the first
            # turn starts, and only then is the goal activated. With
            # --no-send nothing may start at all, so it stays paused.
            first_status = "active" if send and not will_send else "paused"
            goal_set_remote(
                lane=lane, objective=goal.strip(), status=first_status, origin=origin
            )
            goal_set = True
        if will_send:
            assert text is not None
            lane_turn_start(lane=lane, text=text, origin=origin)
            message_accepted = True
            if goal is not None:
                goal_set_remote(
                    lane=lane, objective=None, status="active", origin=origin
                )
    lane.refresh_from_db()
    return {"lane": lane, "message_accepted": message_accepted, "goal_set": goal_set}
