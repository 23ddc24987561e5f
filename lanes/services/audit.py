"""The audit log: every write, refused write and failed write leaves a row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dispatchsite.core.errors import DispatchError
from dispatchsite.core.origin import Origin
from lanes.models import AuditEntry, Lane


def audit_record(
    *,
    op: str,
    origin: Origin,
    lane: Lane | str | None = None,
    outcome: str = "ok",
    detail: str = "",
) -> AuditEntry:
    return AuditEntry.objects.record(
        op=op, origin=origin, lane=lane, outcome=outcome, detail=detail
    )


@contextmanager
def audit_failures(
    *, op: str, lane: Lane | str | None, origin: Origin
) -> Iterator[None]:
    """Record a refused or failed write under its error code, then re-raise."""
    try:
        yield
    except DispatchError as exc:
        audit_record(
            op=op, lane=lane, outcome=exc.code, detail=exc.message, origin=origin
        )
        raise
