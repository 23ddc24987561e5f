"""`new`: a lane with its first turn (and goal)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import THREAD_NAME_SET
from lanes.models import Lane
from lanes.services.appserver import rpc
from lanes.services.audit import audit_failures, audit_record
from lanes.services.goals import goal_set_remote
from lanes.services.messages import lane_turn_start
from lanes.services.registration import clean_name, lane_register, lane_title_free
from lanes.turns import thread_settings_params
from lanes.worker import gateway


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
    host = settings.DISPATCH_HOST
    runtime = {
        key: value
        for key, value in {
            "model": model,
            "sandbox": sandbox,
            "approval_policy": approval_policy,
            "effort": effort,
        }.items()
        if value
    }
    start: dict[str, Any] = {
        "cwd": cwd,
        **thread_settings_params(
            model=model, sandbox=sandbox, approval_policy=approval_policy
        ),
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
            goal_set_remote(lane=lane, objective=goal.strip(), status=first_status)
            goal_set = True
        if will_send:
            assert text is not None
            lane_turn_start(lane=lane, text=text, origin=origin)
            message_accepted = True
            if goal is not None:
                goal_set_remote(lane=lane, objective=None, status="active")
    lane.refresh_from_db()
    return {"lane": lane, "message_accepted": message_accepted, "goal_set": goal_set}
