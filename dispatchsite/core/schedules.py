"""Periodic work the apps ask for, so the runtime schedules it knowing no app.

An app registers its celery beat entries from its `AppConfig.ready()`; before
celery beat starts, `dispatch up` makes each one a django_celery_beat
PeriodicTask (dispatchsite/runtime/beat.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BeatEntry:
    # The PeriodicTask's name: its identity, so renaming one leaves the old
    # row behind.
    name: str
    task: str
    every_seconds: int


_ENTRIES: dict[str, BeatEntry] = {}


def register_beat_entry(entry: BeatEntry) -> None:
    """Add `entry`; registering the same entry again is a no-op."""
    if entry.every_seconds <= 0:
        raise ValueError(f"beat entry {entry.name!r} needs a positive interval")
    known = _ENTRIES.get(entry.name)
    if known is not None and known != entry:
        raise RuntimeError(f"beat entry {entry.name!r} registered twice")
    _ENTRIES[entry.name] = entry


def beat_entries() -> list[BeatEntry]:
    return list(_ENTRIES.values())
