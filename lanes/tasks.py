"""Celery tasks of the lanes app (found by `app.autodiscover_tasks()`)."""

from __future__ import annotations

from lanes.journal.retention import journal_maintain

__all__ = ["journal_maintain"]
