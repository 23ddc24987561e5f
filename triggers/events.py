"""Event triggers: journaled app-server events become pending firings.

Connected in TriggersConfig.ready to lanes.signals.lane_events_journaled. The
receiver runs on the worker's one ORM thread, so it only inserts firing rows
and queues the celery task that delivers them; delivering here would call
the worker it is blocking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lanes.journal.eventstore import EventRow


def on_events_journaled(sender: Any, rows: list[EventRow], **kwargs: Any) -> None:
    from triggers import queue
    from triggers.services import events_record

    firing_ids = events_record(rows=rows)
    if firing_ids:
        queue.enqueue_fire(firing_ids)
