"""Celery tasks of the triggers app (found by `app.autodiscover_tasks()`).

`triggers.tick` is the one scheduling beat entry (every second): it claims
due slots and queues `triggers.fire` for each slot time, with the slot as the
task's ETA so a firing starts at its slot, not at the next tick.
`triggers.prune` (hourly) drops old finished firings from the ledger.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from triggers.beat import PRUNE_TASK, TICK_TASK
from triggers.queue import FIRE_TASK


@shared_task(name=TICK_TASK, ignore_result=True)
def tick() -> int:
    from triggers import queue
    from triggers.services import triggers_claim

    now = timezone.now()
    claimed = triggers_claim(now=now)
    for slot_at, ids in sorted(claimed.due.items()):
        queue.enqueue_fire(ids, eta=slot_at if slot_at > now else None)
    return claimed.count


@shared_task(name=FIRE_TASK, ignore_result=True)
def fire(firing_ids: list[int]) -> None:
    from triggers.services import firings_run

    firings_run(firing_ids=firing_ids)


@shared_task(name=PRUNE_TASK, ignore_result=True)
def prune() -> int:
    from triggers.services.retention import firings_prune

    return firings_prune(now=timezone.now())
