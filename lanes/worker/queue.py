"""The durable queue: one message per successful idle transition, in order.

Rows are claimed with conditional UPDATEs (pending -> sending), and a partial
unique constraint allows one `sending` row per lane, so two wake-ups can never
deliver two messages at once.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from dispatchsite.core.origin import WORKER
from lanes.journal.lane_state import lane_mark_turn_started
from lanes.models import AuditEntry, Lane, QueuedMessage


def queued_message_enqueue(*, lane: Lane, text: str) -> QueuedMessage:
    message = QueuedMessage(lane=lane, text=text)
    # Only the field checks: the database ones cannot fail here (the lane
    # was just loaded, the client id is a fresh uuid4, and a pending row is
    # outside the one-sending-row constraint), and cost every send three
    # queries. The database enforces all three anyway.
    message.full_clean(
        exclude=["lane"], validate_unique=False, validate_constraints=False
    )
    message.save()
    return message


def queued_message_pending_count(*, lane: Lane) -> int:
    return lane.queue.filter(status=QueuedMessage.Status.PENDING).count()


def queued_message_claim_next(*, thread_id: str) -> QueuedMessage | None:
    """Claim the oldest pending message of an idle, unheld lane, or None."""
    lane = Lane.objects.filter(
        thread_id=thread_id,
        status=Lane.Status.IDLE,
        active_turn_id="",
        queue_held=False,
    ).first()
    if lane is None:
        return None
    candidate = lane.queue.filter(status=QueuedMessage.Status.PENDING).first()
    if candidate is None:
        return None
    try:
        with transaction.atomic():
            claimed = QueuedMessage.objects.filter(
                pk=candidate.pk, status=QueuedMessage.Status.PENDING
            ).update(status=QueuedMessage.Status.SENDING)
    except IntegrityError:
        return None  # another message of this lane is already in flight
    if claimed != 1:
        return None
    candidate.refresh_from_db()
    candidate.lane = lane  # callers use it from async code: no lazy fetch
    return candidate


def queued_message_mark_sent(*, message: QueuedMessage, turn_id: str) -> None:
    QueuedMessage.objects.filter(pk=message.pk).update(
        status=QueuedMessage.Status.SENT, turn_id=turn_id
    )
    lane_mark_turn_started(lane_id=message.lane_id, turn_id=turn_id)
    AuditEntry.objects.record(
        op="send",
        lane=message.lane,
        outcome="queued",
        detail=f"delivered queued message {message.pk}",
        origin=WORKER,
    )


def queued_message_mark_failed(*, message: QueuedMessage, error: str) -> None:
    QueuedMessage.objects.filter(pk=message.pk).update(
        status=QueuedMessage.Status.ERROR, error=error[:2000]
    )
    AuditEntry.objects.record(
        op="send",
        lane=message.lane,
        outcome="app_server",
        detail=f"queued message {message.pk}: {error[:200]}",
        origin=WORKER,
    )


def lanes_with_pending(*, host: str) -> list[str]:
    return list(
        Lane.objects.filter(host=host, queue__status=QueuedMessage.Status.PENDING)
        .values_list("thread_id", flat=True)
        .distinct()
    )
