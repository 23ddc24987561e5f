"""Signals other apps subscribe to, so that lanes never imports them.

`lane_events_journaled` is sent by the worker once a batch of app-server
events has committed and been published: `rows` is the list of
`lanes.journal.eventstore.EventRow` in the batch, in seq order. Receivers run
on the worker's one ORM thread, so they must be quick and must never call the
app-server (that would wait on the worker they are blocking): write a row or
enqueue a celery task, and let that do the work.
"""

from __future__ import annotations

from django.dispatch import Signal

lane_events_journaled = Signal()
