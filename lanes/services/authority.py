"""Who may write to a lane, and when."""

from __future__ import annotations

from django.conf import settings

from dispatchsite.core.config import load_policy
from dispatchsite.core.errors import AuthorityError, LaneBusyError, ValidationError
from lanes.models import ATTACHED_LOCK_REASON, Lane
from lanes.services.appserver import thread_load


def require_writable(lane: Lane) -> None:
    if not lane.writable(load_policy()):
        raise AuthorityError(
            f"lane {lane.ref} (@{lane.title}) is attached and read-only: "
            f"{ATTACHED_LOCK_REASON}",
            hint=(
                "set `[policy] allow_attached_writes = true` in "
                f"{settings.DISPATCH_CONFIG_FILE} to allow writes to attached lanes"
            ),
        )
    if lane.status == Lane.Status.ARCHIVED:
        raise ValidationError(
            f"lane {lane.ref} is archived",
            hint=f"restore it first: `dispatch restore {lane.ref}`",
        )


def lane_prepare_write(lane: Lane) -> None:
    """Authority for turn-writing and history-mutating verbs.

    An attached lane (allowed by policy) is resumed first, so the thread is
    loaded in this app-server and its events reach the journal.
    """
    require_writable(lane)
    if lane.source == Lane.Source.ATTACHED:
        thread_load(lane)


def lane_busy_check(lane: Lane) -> None:
    if lane.active_turn_id:
        raise LaneBusyError(
            f"lane {lane.ref} has an active turn ({lane.active_turn_id})",
            hint=f"wait for it, or stop it with `dispatch stop {lane.ref}`",
        )
