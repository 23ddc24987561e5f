"""The apps' beat entries as django_celery_beat rows, ensured by `dispatch up`.

Celery beat runs with the database scheduler, so an entry exists once its
PeriodicTask row does; ensuring is idempotent and runs after every migrate.
"""

from __future__ import annotations

from dispatchsite.core.schedules import BeatEntry, beat_entries


def beat_entries_ensure() -> None:
    """Create (or update) one enabled PeriodicTask per registered entry."""
    for entry in beat_entries():
        beat_entry_ensure(entry=entry)


def beat_entry_ensure(*, entry: BeatEntry) -> None:
    # Only `up` needs beat's models; importing them needs ready apps.
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    # Whole minutes are stored as minutes, as the schedules always were, so
    # existing IntervalSchedule rows are reused rather than duplicated.
    if entry.every_seconds % 60 == 0:
        every, period = entry.every_seconds // 60, IntervalSchedule.MINUTES
    else:
        every, period = entry.every_seconds, IntervalSchedule.SECONDS
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    PeriodicTask.objects.update_or_create(
        name=entry.name,
        defaults={"task": entry.task, "interval": interval, "enabled": True},
    )
