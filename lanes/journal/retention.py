"""Journal upkeep: drop streaming deltas once their item completed, prune old events.

Deltas (`item/agentMessage/delta`, `item/commandExecution/outputDelta`,
reasoning deltas ...) are most of a journal's rows and are redundant once the
item's `item/completed` (which carries the whole text) is journaled; watchers
only need them live. Items, turns, errors and every other event are kept.
Retention (`DISPATCH_EVENT_RETENTION_DAYS`, 0 = forever) drops whole events;
the item index is history's long-term form and is not pruned.

`seq` must never repeat: the worker resumes a thread's numbering at
max(seq) + 1, so neither step ever deletes a thread's newest event.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from lanes.journal.upkeep import MAINTAIN_TASK
from lanes.models import LaneEvent

DELETE_CHUNK = 2000
# Delta notifications: `item/<kind>/delta` or `item/<kind>/<something>Delta`.
# (SQLite's LIKE ignores ASCII case, so both spellings match one pattern.)
DELTA = Q(method__startswith="item/") & (
    Q(method__endswith="/delta") | Q(method__endswith="Delta")
)


def is_delta(method: str) -> bool:
    return method.startswith("item/") and (
        method.endswith("/delta") or method.endswith("Delta")
    )


def delete_ids(ids: list[int]) -> int:
    deleted = 0
    # Short transactions: the worker is writing the journal meanwhile.
    for start in range(0, len(ids), DELETE_CHUNK):
        with transaction.atomic():
            chunk = LaneEvent.objects.filter(pk__in=ids[start : start + DELETE_CHUNK])
            deleted += chunk._raw_delete(chunk.db)
    return deleted


def newest_seq(thread_id: str) -> int:
    return (
        LaneEvent.objects.filter(thread_id=thread_id).aggregate(m=Max("seq"))["m"] or 0
    )


def journal_compact(
    *, now: datetime, older_than_seconds: int | None = None
) -> dict[str, Any]:
    """Delete delta events older than the age whose item has completed."""
    started = time.monotonic()
    age = (
        settings.DISPATCH_DELTA_COMPACT_AFTER_SECONDS
        if older_than_seconds is None
        else older_than_seconds
    )
    cutoff = now - timedelta(seconds=age)
    deltas = LaneEvent.objects.filter(DELTA, received_at__lt=cutoff)
    deleted = 0
    threads = list(deltas.values_list("thread_id", flat=True).distinct())
    for thread_id in threads:
        completed = set(
            LaneEvent.objects.filter(
                thread_id=thread_id, method="item/completed"
            ).values_list("item_id", flat=True)
        )
        top = newest_seq(thread_id)
        ids = [
            pk
            for pk, item_id, method in deltas.filter(
                thread_id=thread_id, seq__lt=top
            ).values_list("pk", "item_id", "method")
            if item_id and item_id in completed and is_delta(method)
        ]
        deleted += delete_ids(ids)
    return {
        "compacted": deleted,
        "compact_threads": len(threads),
        "compact_cutoff": cutoff.isoformat(),
        "compact_ms": int((time.monotonic() - started) * 1000),
    }


def journal_prune(
    *, now: datetime, retention_days: int | None = None
) -> dict[str, Any]:
    """Delete events older than the retention period, except each thread's newest."""
    started = time.monotonic()
    days = (
        settings.DISPATCH_EVENT_RETENTION_DAYS
        if retention_days is None
        else retention_days
    )
    if days <= 0:
        return {"pruned": 0, "prune_threads": 0, "prune_cutoff": None, "prune_ms": 0}
    cutoff = now - timedelta(days=days)
    old = LaneEvent.objects.filter(received_at__lt=cutoff)
    deleted = 0
    threads = list(old.values_list("thread_id", flat=True).distinct())
    for thread_id in threads:
        top = newest_seq(thread_id)
        ids = list(
            old.filter(thread_id=thread_id, seq__lt=top).values_list("pk", flat=True)
        )
        deleted += delete_ids(ids)
    return {
        "pruned": deleted,
        "prune_threads": len(threads),
        "prune_cutoff": cutoff.isoformat(),
        "prune_ms": int((time.monotonic() - started) * 1000),
    }


def journal_maintain_run(
    *,
    now: datetime,
    older_than_seconds: int | None = None,
    retention_days: int | None = None,
    prune: bool = True,
) -> dict[str, Any]:
    out = journal_compact(now=now, older_than_seconds=older_than_seconds)
    if prune:
        out.update(journal_prune(now=now, retention_days=retention_days))
    return out


@shared_task(name=MAINTAIN_TASK)
def journal_maintain() -> dict[str, Any]:
    """Celery beat entry point (scheduled as JOURNAL_UPKEEP)."""
    return journal_maintain_run(now=timezone.now())
