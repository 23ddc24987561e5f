"""Cancel or retry one queued message (the worker delivers; these only move rows).

Both are conditional UPDATEs on the message's status, so a message the
worker claimed meanwhile (pending -> sending) is never cancelled under it,
and a retry races no other retry. A cancelled message keeps its row as
`error` with "cancelled by ..." (the queue's history stays readable, and a
cancel can itself be retried).
"""

from __future__ import annotations

from dispatchsite.core.errors import NotFoundError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.journal.dispatch_events import lane_event, origin_label
from lanes.models import Lane, QueuedMessage
from lanes.services.audit import audit_failures, audit_record
from lanes.services.authority import require_writable
from lanes.worker import gateway

MESSAGE_CANCELLED = "dispatch/message/cancelled"
MESSAGE_RETRIED = "dispatch/message/retried"


def queued_message_get(*, message_id: int) -> QueuedMessage:
    message = QueuedMessage.objects.select_related("lane").filter(pk=message_id).first()
    if message is None:
        raise NotFoundError(
            f"no queued message {message_id}",
            hint="see the lane's queue: `dispatch get <lane>`",
        )
    return message


def queued_message_cancel(*, message_id: int, origin: Origin) -> QueuedMessage:
    """A pending message will not be delivered (it becomes `error`, cancelled)."""
    message = queued_message_get(message_id=message_id)
    lane = message.lane
    with audit_failures(op="queue-cancel", lane=lane, origin=origin):
        require_writable(lane)
        changed = QueuedMessage.objects.filter(
            pk=message.pk, status=QueuedMessage.Status.PENDING
        ).update(
            status=QueuedMessage.Status.ERROR,
            error=f"cancelled by {origin_label(origin)}",
        )
        if changed != 1:
            message.refresh_from_db()
            raise ValidationError(
                f"queued message {message.pk} is {message.status}, not pending",
                hint="only a pending message can be cancelled",
            )
    audit_record(
        op="queue-cancel", lane=lane, detail=f"message {message.pk}", origin=origin
    )
    lane_event(lane, MESSAGE_CANCELLED, origin, messageId=message.pk)
    message.refresh_from_db()
    return message


def queued_message_retry(*, message_id: int, origin: Origin) -> QueuedMessage:
    """A failed (or cancelled) message goes back to pending, ahead of newer ones."""
    message = queued_message_get(message_id=message_id)
    lane = message.lane
    with audit_failures(op="queue-retry", lane=lane, origin=origin):
        require_writable(lane)
        changed = QueuedMessage.objects.filter(
            pk=message.pk, status=QueuedMessage.Status.ERROR
        ).update(status=QueuedMessage.Status.PENDING, error="")
        if changed != 1:
            message.refresh_from_db()
            raise ValidationError(
                f"queued message {message.pk} is {message.status}, not error",
                hint="only a failed or cancelled message can be retried",
            )
    audit_record(
        op="queue-retry", lane=lane, detail=f"message {message.pk}", origin=origin
    )
    lane_event(lane, MESSAGE_RETRIED, origin, messageId=message.pk)
    lane.refresh_from_db()
    if lane.status == Lane.Status.IDLE and not lane.queue_held:
        gateway.notify_worker(
            lane.host, {"type": "appserver.drain", "thread_id": lane.thread_id}
        )
    message.refresh_from_db()
    return message
