"""Turns and messages: send, steer, interject, queue, stop."""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from dispatchsite.core.errors import (
    AppServerError,
    DispatchError,
    LaneBusyError,
    ValidationError,
)
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import (
    TURN_INTERRUPT,
    TURN_START,
    found_active_turn,
    is_no_active_turn_error,
)
from lanes.journal.dispatch_events import MESSAGE_QUEUED, lane_event
from lanes.journal.lane_state import (
    lane_mark_turn_request_failed,
    lane_mark_turn_started,
)
from lanes.models import Lane
from lanes.services.appserver import lane_rpc, rpc
from lanes.services.audit import audit_failures, audit_record
from lanes.services.authority import lane_prepare_write
from lanes.turns import text_input, turn_start_params
from lanes.worker import gateway
from lanes.worker.queue import queued_message_enqueue, queued_message_pending_count

TURN_END_WAIT_SECONDS = 10.0


def lane_turn_start(
    *, lane: Lane, text: str, audit_op: str | None = None, origin: Origin
) -> str:
    try:
        result = lane_rpc(lane, TURN_START, turn_start_params(lane, text))
    except LaneBusyError:
        raise  # refused while a compaction runs: nothing failed, nothing ran
    except DispatchError as exc:
        if app_server_refused(exc):
            lane_mark_turn_request_failed(lane_id=lane.pk, error=exc.message)
            lane.refresh_from_db()
        # else the request never reached the app-server (no worker, no
        # channel layer, app-server restarting): no turn ran, nothing to mark.
        raise
    turn_id = result["turn"]["id"]
    # One write transaction, taken after the RPC: the worker is journaling
    # this very turn and must not wait on a lock held across a round trip.
    with transaction.atomic():
        lane_mark_turn_started(lane_id=lane.pk, turn_id=turn_id)
        if audit_op:
            audit_record(op=audit_op, lane=lane, detail=text[:120], origin=origin)
    lane.refresh_from_db()
    return turn_id


def app_server_refused(exc: DispatchError) -> bool:
    """The app-server answered with a JSON-RPC error (it has a code).

    The worker's own refusals (not ready, app-server gone mid-request) and
    the gateway's (no worker, channel layer down, no answer in time) carry
    none: the turn was never refused, it was never asked for.
    """
    return (
        isinstance(exc, gateway.RpcFailed)
        and getattr(exc, "rpc_code", None) is not None
    )


def wait_turn_end(
    *, lane: Lane, turn_id: str, timeout: float = TURN_END_WAIT_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lane.refresh_from_db(fields=["active_turn_id", "status", "latest_turn_status"])
        if lane.active_turn_id != turn_id:
            return
        time.sleep(0.02)
    raise AppServerError(
        f"turn {turn_id} of lane {lane.ref} did not end within {timeout:g} s "
        "after the interrupt"
    )


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
        f'`{sender.ref}`\n↳ reply `dispatch send {sender.ref} "..."`'
    )


SEND_AUDIT_OPS = {
    "send": "send",
    "steer": "steer",
    "context": "brief",
    "interject": "interject",
    "queue": "queue",
}


def lane_send(
    *,
    lane: Lane,
    text: str,
    mode: str,
    caller_thread_id: str | None = None,
    intro: bool = False,
    origin: Origin,
) -> dict[str, Any]:
    """Deliver text to a lane in one of five modes; returns the ack fields."""
    op = SEND_AUDIT_OPS.get(mode)
    if op is None:
        raise ValidationError(
            f"unknown send mode {mode!r}", hint="use send|steer|queue|interject|context"
        )
    with audit_failures(op=op, lane=lane, origin=origin):
        if not text.strip():
            raise ValidationError("message text is empty", hint="pass the text to send")
        lane_prepare_write(lane)
        if intro:
            text += intro_footer(caller_thread_id=caller_thread_id)
        if mode == "queue":
            return lane_queue(lane=lane, text=text, origin=origin)
        if mode == "send":
            turn_id = lane_turn_start(
                lane=lane, text=text, audit_op="send", origin=origin
            )
            return {
                "op": "send",
                "detail": f"turn {turn_id} started",
                "turn_id": turn_id,
            }
        if mode == "steer":
            return lane_steer(lane=lane, text=text, origin=origin)
        if mode == "context":
            lane_rpc(
                lane,
                "thread/inject_items",
                {
                    "threadId": lane.thread_id,
                    "items": [
                        {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": text}],
                        }
                    ],
                },
            )
            audit_record(op="brief", lane=lane, detail=text[:120], origin=origin)
            return {
                "op": "brief",
                "detail": "context injected; no turn started",
                "turn_id": None,
            }
        return lane_interject(lane=lane, text=text, origin=origin)


def lane_steer(*, lane: Lane, text: str, origin: Origin) -> dict[str, Any]:
    active = lane.active_turn_id
    if not active:
        raise ValidationError(
            f"lane {lane.ref} has no active turn to steer",
            hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
        )
    try:
        result = rpc(
            lane,
            "turn/steer",
            {
                "threadId": lane.thread_id,
                "expectedTurnId": active,
                "input": text_input(text),
            },
        )
    except gateway.RpcFailed as exc:
        if is_no_active_turn_error(exc.message):
            raise ValidationError(
                f"lane {lane.ref}: the turn {active} already ended; nothing to steer",
                hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
            ) from None
        raise
    audit_record(op="steer", lane=lane, detail=text[:120], origin=origin)
    return {
        "op": "steer",
        "detail": f"steered turn {active}",
        "turn_id": result.get("turnId", active),
    }


def lane_interject(*, lane: Lane, text: str, origin: Origin) -> dict[str, Any]:
    active = lane.active_turn_id
    if not active:
        raise ValidationError(
            f"lane {lane.ref} has no active turn to interject into",
            hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
        )
    try:
        rpc(lane, TURN_INTERRUPT, {"threadId": lane.thread_id, "turnId": active})
    except gateway.RpcFailed as exc:
        # The turn ended on its own meanwhile: the new text still goes out.
        if not is_no_active_turn_error(exc.message):
            raise
    audit_record(op="interrupt", lane=lane, detail="interject", origin=origin)
    wait_turn_end(lane=lane, turn_id=active)
    turn_id = lane_turn_start(lane=lane, text=text, audit_op="interject", origin=origin)
    return {
        "op": "interject",
        "detail": f"interrupted {active}; turn {turn_id} started",
        "turn_id": turn_id,
    }


def lane_queue(*, lane: Lane, text: str, origin: Origin) -> dict[str, Any]:
    message = queued_message_enqueue(lane=lane, text=text)
    audit_record(
        op="queue", lane=lane, detail=f"queued message {message.pk}", origin=origin
    )
    lane_event(lane, MESSAGE_QUEUED, origin, messageId=message.pk, text=text[:500])
    lane.refresh_from_db()
    if lane.status == Lane.Status.IDLE and not lane.queue_held:
        gateway.notify_worker(
            lane.host, {"type": "appserver.drain", "thread_id": lane.thread_id}
        )
    pending = queued_message_pending_count(lane=lane)
    return {
        "op": "queue",
        "detail": f"queued message {message.pk}; pending={pending}",
        "turn_id": None,
        "queued_message_id": message.pk,
    }


def turn_interrupt(lane: Lane, turn_id: str) -> None:
    rpc(lane, TURN_INTERRUPT, {"threadId": lane.thread_id, "turnId": turn_id})


def lane_stop(*, lane: Lane, origin: Origin) -> dict[str, Any]:
    with audit_failures(op="stop", lane=lane, origin=origin):
        lane_prepare_write(lane)
        active = lane.active_turn_id
        if not active:
            raise ValidationError(
                f"lane {lane.ref} has no active turn to stop", hint="nothing to do"
            )
        with gateway.rpc_errors(
            tolerate=lambda message: found_active_turn(message) is not None
        ) as stale:
            turn_interrupt(lane, active)
        if stale.error is not None:
            # An active goal starts its next turn on its own, possibly before
            # the journal has told this lane: stop the turn that runs now.
            active = found_active_turn(stale.error.message) or active
            with gateway.rpc_errors():
                turn_interrupt(lane, active)
    audit_record(op="stop", lane=lane, detail=f"interrupted {active}", origin=origin)
    return {"op": "stop", "detail": f"interrupted turn {active}", "turn_id": active}
