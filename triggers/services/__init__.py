"""The one write path for triggers. Surfaces parse input and call these.

manage: create, pause, resume, remove, rotate a webhook secret; claim: the
beat tick's slot claims; record: event, webhook and manual firings; firing:
running one firing (guards, delivery through lanes.services, outcome).
"""

from __future__ import annotations

from triggers.services.claim import triggers_claim
from triggers.services.firing import firing_run, firings_run
from triggers.services.manage import (
    TriggerSpec,
    trigger_create,
    trigger_destroy,
    trigger_get,
    trigger_pause,
    trigger_resume,
    trigger_rotate_secret,
)
from triggers.services.record import events_record, firing_record, trigger_fire

__all__ = [
    "TriggerSpec",
    "events_record",
    "firing_record",
    "firing_run",
    "firings_run",
    "trigger_create",
    "trigger_destroy",
    "trigger_fire",
    "trigger_get",
    "trigger_pause",
    "trigger_resume",
    "trigger_rotate_secret",
    "triggers_claim",
]
