"""The audit log: every write, refused write and failed write leaves a row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dispatchsite.core.errors import DispatchError
from lanes.models import AuditEntry, Lane


def audit_record(
    *,
    op: str,
    lane: Lane | str | None = None,
    outcome: str = "ok",
    detail: str = "",
    surface: str = "",
    trigger_id: str = "",
) -> AuditEntry:
    lane_text = lane.ref if isinstance(lane, Lane) else (lane or "")
    return AuditEntry.objects.create(
        op=op,
        lane=lane_text,
        outcome=outcome,
        detail=detail[:500],
        surface=surface,
        trigger_id=trigger_id,
    )


@contextmanager
def audit_failures(*, op: str, lane: Lane | str | None, surface: str) -> Iterator[None]:
    """Record a refused or failed write under its error code, then re-raise."""
    try:
        yield
    except DispatchError as exc:
        audit_record(
            op=op, lane=lane, outcome=exc.code, detail=exc.message, surface=surface
        )
        raise
