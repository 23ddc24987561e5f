"""Questions the app-server asks us. Every one gets an answer, by policy.

An unanswered request blocks its turn forever, so the worker answers at once:
approvals per `[policy] approvals` (decline by default), anything that needs
a human's words is declined rather than invented.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from dispatchsite.core.config import Policy
from dispatchsite.core.origin import WORKER
from lanes.appserver.protocol import (
    ITEM_APPROVAL_METHODS,
    LEGACY_APPROVAL_METHODS,
    MCP_ELICITATION,
    REQUEST_USER_INPUT,
)
from lanes.journal.writer import thread_of
from lanes.models import AuditEntry, Lane, ServerRequest


def server_request_record(*, message: dict[str, Any]) -> ServerRequest:
    params = message.get("params") or {}
    return ServerRequest.objects.create(
        thread_id=thread_of(params),
        request_id=message.get("id"),
        method=message.get("method", ""),
        params=params,
    )


def policy_answer(method: str, policy: Policy) -> dict[str, Any] | None:
    if method in ITEM_APPROVAL_METHODS:
        return {"decision": "accept" if policy.approvals == "accept" else "decline"}
    if method in LEGACY_APPROVAL_METHODS:
        return {"decision": "approved" if policy.approvals == "accept" else "denied"}
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
    """Return the result to send; raise to send a JSON-RPC error instead."""
    answer = policy_answer(record.method, policy)
    record.state = (
        ServerRequest.State.RESPONDED
        if answer is not None
        else ServerRequest.State.FAILED
    )
    record.response = answer
    record.resolved_at = timezone.now()
    record.save(update_fields=["state", "response", "resolved_at"])
    lane = Lane.objects.filter(thread_id=record.thread_id).first()
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
