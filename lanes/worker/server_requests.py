"""Questions the app-server asks us. Every one gets exactly one answer.

An unanswered request blocks its turn, so the worker answers at once by
policy: approvals per the lane's `approvals` setting or `[policy] approvals`
(decline by default); anything that needs a human's words is declined
rather than invented. With `hold`, an approval is recorded as a held,
pending ServerRequest and its turn waits: the row leaves `pending` exactly
once, by a conditional UPDATE, from `dispatch request respond`
(lanes.services.requests), the worker's timeout, or the end of the
app-server connection that asked, and the worker sends whatever that one
UPDATE decided.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from dispatchsite.core.config import APPROVAL_MODES, Policy
from dispatchsite.core.errors import ValidationError
from dispatchsite.core.origin import WORKER
from lanes.appserver.protocol import (
    ITEM_APPROVAL_METHODS,
    LEGACY_APPROVAL_METHODS,
    MCP_ELICITATION,
    REQUEST_USER_INPUT,
)
from lanes.journal.writer import thread_of
from lanes.models import AuditEntry, Lane, ServerRequest

# Methods a person may answer through dispatch (and so may be held).
HOLDABLE_METHODS = ITEM_APPROVAL_METHODS | LEGACY_APPROVAL_METHODS
DECISIONS = ("accept", "decline", "cancel")
# What each decision is called by the legacy (v1) approval methods.
LEGACY_DECISIONS = {"accept": "approved", "decline": "denied", "cancel": "abort"}


def decision_answer(method: str, decision: str) -> dict[str, Any]:
    """The JSON-RPC result that carries `decision` for an approval method."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    if method in LEGACY_APPROVAL_METHODS:
        return {"decision": LEGACY_DECISIONS[decision]}
    return {"decision": decision}


def approval_mode_check(mode: str) -> str:
    """A lane's `approvals` setting, refused (exit 2) unless it is one we know."""
    if mode not in APPROVAL_MODES:
        raise ValidationError(
            f"approvals: {mode!r} is not one of {', '.join(sorted(APPROVAL_MODES))}",
            hint="pass --approvals decline, accept or hold",
        )
    return mode


def approvals_mode(lane: Lane | None, policy: Policy) -> str:
    """The lane's own `approvals` setting, else the operator's policy."""
    chosen = (lane.runtime_settings or {}).get("approvals") if lane else None
    return str(chosen or policy.approvals)


def server_request_record(
    *,
    message: dict[str, Any],
    policy: Policy,
    host: str = "",
    connection: str = "",
) -> ServerRequest:
    """Store the request, held or to be answered by policy (`record.held`)."""
    params = message.get("params") or {}
    thread_id = thread_of(params)
    method = message.get("method", "")
    lane = Lane.objects.filter(thread_id=thread_id).first() if thread_id else None
    held = method in HOLDABLE_METHODS and approvals_mode(lane, policy) == "hold"
    record = ServerRequest.objects.create(
        thread_id=thread_id,
        request_id=message.get("id"),
        method=method,
        params=params,
        held=held,
        host=host,
        connection=connection,
    )
    return record


def pending_event_params(record: ServerRequest) -> dict[str, Any]:
    params = record.params or {}
    return {
        "requestId": record.pk,
        "method": record.method,
        "turnId": params.get("turnId"),
        "itemId": params.get("itemId"),
        "command": params.get("command"),
        "cwd": params.get("cwd"),
        "reason": params.get("reason"),
    }


def policy_answer(method: str, mode: str) -> dict[str, Any] | None:
    if method in HOLDABLE_METHODS:
        return decision_answer(method, "accept" if mode == "accept" else "decline")
    if method == REQUEST_USER_INPUT:
        return {"answers": {}}
    if method == MCP_ELICITATION:
        return {"action": "decline", "content": None}
    if method == "item/tool/call":
        return {
            "contentItems": [
                {"type": "inputText", "text": "dispatch offers no such tool"}
            ],
            "success": False,
        }
    if method == "currentTime/read":
        return {"currentTimeAt": int(time.time())}
    return None


def server_request_answer(*, record: ServerRequest, policy: Policy) -> dict[str, Any]:
    """Answer a request that is not held; raise to send a JSON-RPC error instead."""
    lane = Lane.objects.filter(thread_id=record.thread_id).first()
    mode = approvals_mode(lane, policy)
    answer = policy_answer(record.method, mode)
    record.state = (
        ServerRequest.State.RESPONDED
        if answer is not None
        else ServerRequest.State.FAILED
    )
    record.response = answer
    record.resolved_at = timezone.now()
    record.answered_by = "policy"
    if record.method in HOLDABLE_METHODS:
        record.decision = "accept" if mode == "accept" else "decline"
    record.save(
        update_fields=["state", "response", "resolved_at", "answered_by", "decision"]
    )
    AuditEntry.objects.record(
        op="server-request",
        lane=lane.ref if lane else record.thread_id,
        outcome="ok" if answer is not None else "unsupported",
        detail=f"{record.method}: {answer}"[:200],
        origin=WORKER,
    )
    if answer is None:
        raise ValueError(f"dispatch cannot answer {record.method}")
    return answer


# -- held requests: the worker's side ------------------------------------------------


def held_request_outcome(*, pk: int) -> tuple[str, dict[str, Any] | None]:
    """(state, response) of a held request; state "pending" while it waits."""
    row = ServerRequest.objects.filter(pk=pk).values("state", "response").first()
    if row is None:
        return ServerRequest.State.EXPIRED, None
    return row["state"], row["response"]


def held_request_time_out(*, pk: int) -> bool:
    """Decline a held request nobody answered in time, unless someone just did.

    True when the timeout decided the answer.
    """
    record = ServerRequest.objects.get(pk=pk)
    answer = decision_answer(record.method, "decline")
    claimed = ServerRequest.objects.filter(
        pk=pk, state=ServerRequest.State.PENDING
    ).update(
        state=ServerRequest.State.RESPONDED,
        response=answer,
        decision="decline",
        answered_by="timeout",
        resolved_at=timezone.now(),
    )
    if claimed:
        lane = Lane.objects.filter(thread_id=record.thread_id).first()
        AuditEntry.objects.record(
            op="request-respond",
            lane=lane.ref if lane else record.thread_id,
            outcome="timeout",
            detail=f"request {pk} {record.method}: declined after waiting too long",
            origin=WORKER,
        )
    return bool(claimed)


def answered_event_params(
    record: ServerRequest, decision: str, answered_by: str
) -> dict[str, Any]:
    return {
        "requestId": record.pk,
        "method": record.method,
        "turnId": (record.params or {}).get("turnId"),
        "decision": decision,
        "answeredBy": answered_by,
    }


def held_requests_expire(
    *,
    host: str,
    keep_connection: str | None = None,
    connection: str | None = None,
    request_ids: list[Any] | None = None,
    reason: str = "app-server connection ended",
) -> list[ServerRequest]:
    """Expire held requests nobody can answer any more; return them.

    Of `connection` (it ended), of every connection but `keep_connection`
    (a new one started: older ones are dead), and, with `request_ids`, only
    those JSON-RPC ids (the app-server resolved them itself, e.g. after an
    interrupt).
    """
    rows = ServerRequest.objects.filter(
        host=host, held=True, state=ServerRequest.State.PENDING
    )
    if connection is not None:
        rows = rows.filter(connection=connection)
    if keep_connection is not None:
        rows = rows.exclude(connection=keep_connection)
    expired = []
    for record in rows:
        if request_ids is not None and record.request_id not in request_ids:
            continue
        claimed = ServerRequest.objects.filter(
            pk=record.pk, state=ServerRequest.State.PENDING
        ).update(
            state=ServerRequest.State.EXPIRED,
            answered_by=reason[:200],
            resolved_at=timezone.now(),
        )
        if not claimed:
            continue
        record.answered_by = reason[:200]
        expired.append(record)
    return expired
