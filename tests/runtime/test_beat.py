"""`dispatch up` turns the apps' beat entries into django_celery_beat rows."""

from __future__ import annotations

import pytest

from dispatchsite.core import schedules
from dispatchsite.core.schedules import BeatEntry
from dispatchsite.runtime.beat import beat_entries_ensure, beat_entry_ensure

pytestmark = pytest.mark.django_db


def test_it_schedules_journal_upkeep_once_however_often_up_runs() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    beat_entries_ensure()
    beat_entries_ensure()
    task = PeriodicTask.objects.get(task="lanes.journal_maintain")
    assert task.name == "dispatch: journal compact + prune" and task.enabled
    assert (task.interval.every, task.interval.period) == (15, IntervalSchedule.MINUTES)
    assert PeriodicTask.objects.filter(task="lanes.journal_maintain").count() == 1
    assert IntervalSchedule.objects.filter(every=15).count() == 1


def test_it_reenables_and_retimes_an_entry_by_name() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    entry = BeatEntry(name="test: upkeep", task="tests.upkeep", every_seconds=90)
    beat_entry_ensure(entry=entry)
    PeriodicTask.objects.filter(name=entry.name).update(enabled=False)
    beat_entry_ensure(entry=entry)
    task = PeriodicTask.objects.get(name=entry.name)
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (90, IntervalSchedule.SECONDS)


def test_it_refuses_two_different_entries_under_one_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedules, "_ENTRIES", {})
    entry = BeatEntry(name="test: upkeep", task="tests.upkeep", every_seconds=60)
    schedules.register_beat_entry(entry)
    schedules.register_beat_entry(entry)
    with pytest.raises(RuntimeError, match="registered twice"):
        schedules.register_beat_entry(
            BeatEntry(name="test: upkeep", task="tests.other", every_seconds=60)
        )
    assert schedules.beat_entries() == [entry]
