"""The triggers app's beat entries, named without importing celery.

TriggersConfig.ready() registers them in every process, `dispatch list`
included; the tasks themselves (triggers.tasks) need celery, which costs a
CLI call ~40 ms to import.
"""

from __future__ import annotations

from dispatchsite.core.schedules import BeatEntry

TICK_TASK = "triggers.tick"
PRUNE_TASK = "triggers.prune"
TRIGGER_PRUNE = BeatEntry(
    name="dispatch: trigger firings prune", task=PRUNE_TASK, every_seconds=60 * 60
)
TRIGGER_TICK = BeatEntry(
    name="dispatch: triggers tick", task=TICK_TASK, every_seconds=1
)
