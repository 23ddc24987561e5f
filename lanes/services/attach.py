"""Attaching threads started elsewhere, and catching up on them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatchsite.core.errors import DispatchError
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import THREAD_TURNS_LIST, thread_status
from lanes.journal.lane_state import lane_latest_turn_set
from lanes.models import Lane
from lanes.services.appserver import rpc, thread_read
from lanes.services.audit import audit_failures, audit_record
from lanes.services.registration import lane_ref_allocate, lane_title_unique
from lanes.services.validation import require_thread_id
from lanes.worker import gateway

ATTACH_TIMEOUT_SECONDS = 10.0
UNKNOWN_THREAD_HINT = "find ids with `dispatch list --unmanaged`"


def attached_status(thread: dict[str, Any]) -> str:
    status = thread_status(thread)
    # Not loaded here means nothing runs in *this* app-server: idle to us.
    return Lane.Status.IDLE if status == "not_loaded" else status


def lane_attach(*, thread_id: str, sync: bool, origin: Origin) -> dict[str, Any]:
    """Register an existing thread as an attached lane, from metadata only.

    Idempotent, and never half-registered: the lane row and its audit row
    are written in one transaction after the metadata read succeeded.
    """
    thread_id = thread_id.strip()
    existing = (
        Lane.objects.filter(thread_id=thread_id).first()
        or Lane.objects.filter(ref=thread_id).first()
    )
    if existing is not None:
        return {
            "lane": existing,
            "registered": False,
            "sync": lane_sync_latest(lane=existing, origin=origin) if sync else None,
        }
    host = settings.DISPATCH_HOST
    with audit_failures(op="attach", lane=thread_id, origin=origin):
        thread_id = require_thread_id(thread_id, what="attach")
        try:
            thread = thread_read(
                host=host, thread_id=thread_id, timeout=ATTACH_TIMEOUT_SECONDS
            )
        except DispatchError as exc:
            # Same kind (an unknown id stays not_found), saying nothing was made.
            exc.message = f"attach {thread_id}: {exc.message} (no lane registered)"
            exc.args = (exc.message,)
            exc.hint = exc.hint or UNKNOWN_THREAD_HINT
            raise
        name = str(thread.get("name") or "").strip().removeprefix("@").strip()
        base = name or thread_id[:8]
        lane = None
        for _attempt in range(5):
            try:
                with transaction.atomic():
                    lane = Lane(
                        thread_id=thread_id,
                        ref=lane_ref_allocate(thread_id=thread_id),
                        title=lane_title_unique(base=base),
                        source=Lane.Source.ATTACHED,
                        cwd=str(thread.get("cwd") or "")[:1024],
                        host=host,
                        status=attached_status(thread),
                        model=str(thread.get("model") or "")[:100],
                        model_provider=str(thread.get("modelProvider") or "")[:100],
                    )
                    lane.full_clean(validate_constraints=False)
                    lane.save()
                    audit_record(
                        op="attach", lane=lane, detail=thread_id, origin=origin
                    )
                break
            except IntegrityError:
                lane = Lane.objects.filter(thread_id=thread_id).first()
                if lane is not None:  # attached concurrently: same result
                    break
        if lane is None:
            raise DispatchError(f"could not register thread {thread_id}")
    return {
        "lane": lane,
        "registered": True,
        "sync": lane_sync_latest(lane=lane, origin=origin) if sync else None,
    }


def lane_sync_latest(*, lane: Lane, origin: Origin) -> dict[str, Any]:
    """Bring latest_turn up to date from the thread's newest turn."""
    with audit_failures(op="sync", lane=lane, origin=origin):
        with gateway.rpc_errors():
            page = rpc(
                lane,
                THREAD_TURNS_LIST,
                {
                    "threadId": lane.thread_id,
                    "limit": 1,
                    "sortDirection": "desc",
                    "itemsView": "summary",
                },
                timeout=ATTACH_TIMEOUT_SECONDS,
            )
    turns = page.get("data") or []
    now = timezone.now()
    if turns:
        turn = turns[0]
        status = {"inProgress": "started"}.get(turn.get("status"), turn.get("status"))
        error = turn.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        lane_latest_turn_set(
            lane_id=lane.pk,
            turn_id=str(turn.get("id") or ""),
            status=str(status or ""),
            error=message,
            at=now,
        )
        lane.refresh_from_db()
    audit_record(op="sync", lane=lane, detail="latest turn", origin=origin)
    return {
        "state": "metadata",
        "last_synced_at": now.isoformat(),
        "latest_turn_id": lane.latest_turn_id or None,
        "transcript_partial": True,
    }
