"""What the worker does to the DB when it or its app-server (re)starts."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from lanes.models import Lane, QueuedMessage, WorkerLease


def worker_lease_claim(*, host: str, pid: int) -> None:
    WorkerLease.objects.update_or_create(
        host=host,
        defaults={
            "pid": pid,
            "started_at": timezone.now(),
            "heartbeat_at": timezone.now(),
        },
    )


def worker_lease_beat(
    *, host: str, pid: int, app_server_pid: int | None, app_server_version: str
) -> None:
    WorkerLease.objects.filter(host=host, pid=pid).update(
        heartbeat_at=timezone.now(),
        app_server_pid=app_server_pid,
        app_server_version=app_server_version,
    )


def worker_lease_release(*, host: str, pid: int) -> None:
    WorkerLease.objects.filter(host=host, pid=pid).delete()


def lanes_to_resume(*, host: str) -> list[str]:
    # Attached lanes stay observe-only: resuming them here would make this
    # app-server a second writer of a thread another process owns.
    return list(
        Lane.objects.filter(host=host, source=Lane.Source.OWN)
        .exclude(status=Lane.Status.ARCHIVED)
        .values_list("thread_id", flat=True)
    )


def in_flight_messages(*, host: str) -> list[dict[str, Any]]:
    return [
        {
            "pk": m.pk,
            "thread_id": m.lane.thread_id,
            "client_message_id": str(m.client_message_id),
        }
        for m in QueuedMessage.objects.filter(
            status=QueuedMessage.Status.SENDING, lane__host=host
        ).select_related("lane")
    ]


def in_flight_settle(*, pk: int, delivered: bool) -> None:
    """Never send twice: a message the thread already holds counts as sent."""
    status = QueuedMessage.Status.SENT if delivered else QueuedMessage.Status.PENDING
    QueuedMessage.objects.filter(pk=pk, status=QueuedMessage.Status.SENDING).update(
        status=status
    )
