"""The journal's periodic upkeep, named without importing celery.

LanesConfig.ready() registers it in every process, `dispatch list` included;
the task itself (lanes.journal.retention) needs celery, which costs a CLI
call ~40 ms to import.
"""

from __future__ import annotations

from dispatchsite.core.schedules import BeatEntry

MAINTAIN_TASK = "lanes.journal_maintain"
# Registered by LanesConfig.ready(); `dispatch up` makes it a PeriodicTask.
JOURNAL_UPKEEP = BeatEntry(
    name="dispatch: journal compact + prune", task=MAINTAIN_TASK, every_seconds=15 * 60
)
