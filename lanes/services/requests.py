"""The approvals inbox: requests held for a person, and their answers.

`request_respond` claims the held row by one conditional UPDATE from
`pending`, so of a respond, a second respond, the worker's timeout and an
expiry exactly one decides; then it wakes the worker that holds the
app-server's request (lanes.worker.held), which sends the stored answer. The
wake-up may be lost: the worker re-reads held rows every second anyway.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from dispatchsite.core.errors import LaneBusyError, NotFoundError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.journal.dispatch_events import (
    APPROVAL_ANSWERED,
    dispatch_event_record,
    origin_label,
)
from lanes.models import Lane, ServerRequest
from lanes.services.audit import audit_failures, audit_record
from lanes.services.authority import require_writable
from lanes.worker import gateway
from lanes.worker.server_requests import (
    DECISIONS,
    answered_event_params,
    decision_answer,
)


def held_requests(*, lane: Lane | None = None) -> list[ServerRequest]:
    """Held approvals still waiting, oldest first."""
    rows = ServerRequest.objects.filter(held=True, state=ServerRequest.State.PENDING)
    if lane is not None:
        rows = rows.filter(thread_id=lane.thread_id)
    return list(rows.order_by("received_at", "id"))


def request_get(*, pk: int) -> ServerRequest:
    record = ServerRequest.objects.filter(pk=pk).first()
    if record is None:
        raise NotFoundError(
            f"no server request {pk}", hint="see `dispatch request list`"
        )
    return record


def request_respond(*, pk: int, decision: str, origin: Origin) -> ServerRequest:
    """Answer a held approval: accept, decline or cancel (also ends the turn)."""
    record = request_get(pk=pk)
    lane = Lane.objects.filter(thread_id=record.thread_id).first()
    with audit_failures(
        op="request-respond", lane=lane or record.thread_id, origin=origin
    ):
        if decision not in DECISIONS:
            raise ValidationError(
                f"decision: {decision!r} is not one of {', '.join(DECISIONS)}",
                hint="pass accept, decline or cancel",
            )
        if not record.held:
            raise ValidationError(
                f"request {pk} ({record.method}) was not held: dispatch answered "
                "it by policy",
                hint="only held approvals are answered through dispatch; see "
                '`[policy] approvals = "hold"`',
            )
        if lane is not None:
            require_writable(lane)
        if record.state != ServerRequest.State.PENDING:
            raise already_answered(record)
        # A worker that is down has no app-server either: its held requests
        # expire when it starts again, so nothing would receive this answer.
        gateway.require_worker(record.host or (lane.host if lane else ""))
        label = origin_label(origin)
        with transaction.atomic():
            claimed = ServerRequest.objects.filter(
                pk=pk, state=ServerRequest.State.PENDING
            ).update(
                state=ServerRequest.State.RESPONDED,
                response=decision_answer(record.method, decision),
                decision=decision,
                answered_by=label[:200],
                resolved_at=timezone.now(),
            )
            if not claimed:
                record.refresh_from_db()
                raise already_answered(record)
            if lane is not None:
                dispatch_event_record(
                    lane=lane,
                    method=APPROVAL_ANSWERED,
                    params=answered_event_params(record, decision, label),
                )
    gateway.notify_worker(record.host, {"type": "appserver.answered", "pk": pk})
    audit_record(
        op="request-respond",
        lane=lane or record.thread_id,
        detail=f"request {pk} {record.method}: {decision}",
        origin=origin,
    )
    record.refresh_from_db()
    return record


def already_answered(record: ServerRequest) -> LaneBusyError:
    how = record.decision or record.state
    by = f" by {record.answered_by}" if record.answered_by else ""
    return LaneBusyError(
        f"request {record.pk} is no longer pending: {record.state} ({how}){by}",
        hint="see `dispatch request list` for requests still waiting",
    )


def request_view(record: ServerRequest, lane: Lane | None) -> dict[str, Any]:
    params = record.params or {}
    return {
        "id": record.pk,
        "lane": lane.ref if lane else None,
        "handle": lane.handle if lane else None,
        "thread_id": record.thread_id,
        "method": record.method,
        "state": record.state,
        "turn_id": params.get("turnId"),
        "item_id": params.get("itemId"),
        "command": params.get("command"),
        "cwd": params.get("cwd"),
        "reason": params.get("reason"),
        "decision": record.decision or None,
        "answered_by": record.answered_by or None,
        "received_at": record.received_at.isoformat(),
        "resolved_at": record.resolved_at.isoformat() if record.resolved_at else None,
    }
