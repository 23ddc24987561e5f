"""The one write path for lanes. Surfaces parse input and call these.

Every write leaves an audit row, including refused and failed ones (outcome
= the error code), so `daemon log` tells what was attempted, not only what
worked. One module per concern: audit, appserver (calls through the
worker), registration, authority, messages (turns, send modes, stop),
create (`new`), attach, goals, threads (rename, archive, restore, fork,
rollback, compact).
"""

from __future__ import annotations

from lanes.services.attach import lane_attach, lane_sync_latest
from lanes.services.audit import audit_record
from lanes.services.create import lane_create
from lanes.services.goals import goal_fetch, lane_goal_clear, lane_goal_set
from lanes.services.messages import lane_send, lane_stop
from lanes.services.registration import lane_register
from lanes.services.threads import (
    lane_compact,
    lane_fork,
    lane_rollback,
    thread_archive,
    thread_rename,
    thread_restore,
)

__all__ = [
    "audit_record",
    "goal_fetch",
    "lane_attach",
    "lane_compact",
    "lane_create",
    "lane_fork",
    "lane_goal_clear",
    "lane_goal_set",
    "lane_register",
    "lane_rollback",
    "lane_send",
    "lane_stop",
    "lane_sync_latest",
    "thread_archive",
    "thread_rename",
    "thread_restore",
]
