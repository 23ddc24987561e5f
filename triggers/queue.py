"""Queueing firing tasks from any process: web (webhooks), worker (events),
celery (the tick).

Only celery processes load dispatchsite.celery (the CLI must not pay for
it), and an app may not import the entry points, so tasks are sent by name
through a producer configured from the same CELERY_* settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache

from celery import Celery

FIRE_TASK = "triggers.fire"


@cache
def producer() -> Celery:
    app = Celery("dispatchsite", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    return app


def enqueue_fire(firing_ids: Iterable[int], *, eta: datetime | None = None) -> None:
    """Run these firings in the celery worker, at `eta` (or at once)."""
    producer().send_task(FIRE_TASK, args=[list(firing_ids)], eta=eta)
