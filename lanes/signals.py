"""Signals other apps subscribe to, so that lanes never imports them.

`lane_events_journaled` is sent by the worker once a batch of app-server
events has committed and been published: `rows` is the list of
`lanes.journal.eventstore.EventRow` in the batch, in seq order. Receivers run
on the worker's one ORM thread, so they must be quick and must never call the
app-server (that would wait on the worker they are blocking): write a row or
enqueue a celery task, and let that do the work.

Rows may also be dispatch's own events (methods starting `dispatch/`, see
lanes.journal.dispatch_events); those written outside the worker (by a
service in the web or a celery process) are announced from that process,
one row at a time, with `sender=dispatch_event_record`. Filter on `method`.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

lane_events_journaled = Signal()

# Sent by `get` and `history` for one lane (`lane=`); each receiver returns a
# dict of extra top-level fields, e.g. workspaces adds what the lane was
# launched with and its checked outputs. Receivers must only read the DB.
lane_detail_requested = Signal()


def lane_detail_extras(lane: Any) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for _receiver, extra in lane_detail_requested.send(sender=type(lane), lane=lane):
        if isinstance(extra, dict):
            extras.update(extra)
    return extras


# Sent by `history` with `cwds=` (a set of folders); a receiver returns
# {cwd: facts} about each folder's git worktree. Without one, history shows
# no worktree facts.
worktree_facts_requested = Signal()


def worktree_facts_for(cwds: set[str]) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {}
    for _receiver, found in worktree_facts_requested.send(sender=None, cwds=cwds):
        if isinstance(found, dict):
            facts.update(found)
    return facts
