"""Old firings leave the ledger; a slot is never claimed twice even so.

Time slots only move forward, event slots name a journal seq, and a webhook
replay older than the 300 s timestamp window is refused before its
Idempotency-Key is looked up: a row older than FIRING_RETENTION guards
nothing any more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from triggers.models import TriggerFiring

FIRING_RETENTION = timedelta(days=30)
DELETE_CHUNK = 5000
FINISHED = ("fired", "skipped", "failed")


def firings_prune(*, now: datetime) -> int:
    """Delete finished firings older than FIRING_RETENTION; returns how many."""
    deleted = 0
    while True:
        ids = list(
            TriggerFiring.objects.filter(
                outcome__in=FINISHED, slot_at__lt=now - FIRING_RETENTION
            ).values_list("id", flat=True)[:DELETE_CHUNK]
        )
        if not ids:
            return deleted
        deleted += TriggerFiring.objects.filter(pk__in=ids).delete()[0]
