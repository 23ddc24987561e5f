"""Thread-level changes: rename, archive, restore, fork, rollback, compact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from dispatchsite.core.errors import (
    CapabilityUnavailableError,
    DispatchError,
    LaneBusyError,
)
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import (
    THREAD_NAME_SET,
    THREAD_ROLLBACK,
    is_active_turn_error,
    is_thread_missing_error,
    is_unknown_method_error,
)
from lanes.journal.dispatch_events import (
    LANE_ARCHIVED,
    LANE_RENAMED,
    LANE_RESTORED,
    lane_event,
)
from lanes.journal.lane_state import (
    lane_mark_archived,
    lane_mark_restored,
    lane_mark_rolled_back,
)
from lanes.models import Lane
from lanes.selectors import NOT_FOUND_HINT, resolve_lane_or_thread
from lanes.services.appserver import app_server_version, lane_rpc, rpc, thread_read
from lanes.services.attach import attached_status
from lanes.services.audit import audit_failures, audit_record
from lanes.services.authority import lane_busy_check, lane_prepare_write
from lanes.services.registration import lane_register, lane_title_free
from lanes.services.validation import (
    clean_name,
    thread_settings_check,
    unmanaged_thread_check,
)
from lanes.turns import thread_settings_params
from lanes.worker import gateway


def missing_thread_tolerated(lane: Lane | None) -> Callable[[str], bool] | None:
    """A managed lane outlives its codex thread (e.g. one that never ran a
    turn has no rollout): the change is still made here. A bare thread id
    has nothing here to change."""
    return is_thread_missing_error if lane is not None else None


def thread_rename(
    *, target: str, new: str, origin: Origin
) -> tuple[Lane | None, dict[str, Any]]:
    """Rename a managed lane (title + Codex name) or an unmanaged thread."""
    lane, thread_id = resolve_lane_or_thread(target)
    with audit_failures(op="lane-rename", lane=lane or thread_id, origin=origin):
        if lane is None:
            unmanaged_thread_check(thread_id, hint=NOT_FOUND_HINT)
        name = clean_name(new)
        host = lane.host if lane else settings.DISPATCH_HOST
        meta: dict[str, Any] = {}
        if lane is None:
            meta = thread_read(host=host, thread_id=thread_id)
        else:
            lane_title_free(title=name, exclude=lane)
        detail = f"{target} -> {name}"
        with gateway.rpc_errors(tolerate=missing_thread_tolerated(lane)) as missing:
            gateway.rpc(host, THREAD_NAME_SET, {"threadId": thread_id, "name": name})
        if missing.error is not None:
            # The title is dispatch's own; codex has no thread to name yet.
            detail += " (local only: " + missing.error.message + ")"
        if lane is not None:
            try:
                with transaction.atomic():
                    Lane.objects.filter(pk=lane.pk).update(title=name)
            except IntegrityError:
                lane_title_free(title=name, exclude=lane)
                raise
            lane.refresh_from_db()
    audit_record(op="lane-rename", lane=lane or thread_id, detail=detail, origin=origin)
    if lane is not None:
        lane_event(lane, LANE_RENAMED, origin, title=name, detail=detail)
    return lane, meta


def thread_archive(
    *, target: str, origin: Origin
) -> tuple[Lane | None, dict[str, Any]]:
    lane, thread_id = resolve_lane_or_thread(target)
    detail = "archived"
    with audit_failures(op="archive", lane=lane or thread_id, origin=origin):
        if lane is None:
            unmanaged_thread_check(thread_id, hint=NOT_FOUND_HINT)
        host = lane.host if lane else settings.DISPATCH_HOST
        meta = thread_read(host=host, thread_id=thread_id) if lane is None else {}
        with gateway.rpc_errors(tolerate=missing_thread_tolerated(lane)) as missing:
            gateway.rpc(host, "thread/archive", {"threadId": thread_id})
        if missing.error is not None:
            # The lane is still archived here, and its history is kept.
            detail = f"archived locally ({missing.error.message})"
        if lane is not None:
            lane_mark_archived(lane_id=lane.pk)
            lane.refresh_from_db()
    audit_record(op="archive", lane=lane or thread_id, detail=detail, origin=origin)
    if lane is not None:
        lane_event(lane, LANE_ARCHIVED, origin, detail=detail)
    return lane, meta


def thread_restore(
    *, target: str, origin: Origin
) -> tuple[Lane | None, dict[str, Any]]:
    """Unarchive; never resumes the thread, starts a turn or drains the queue."""
    lane, thread_id = resolve_lane_or_thread(target)
    detail = "restored"
    thread: dict[str, Any] = {}
    with audit_failures(op="restore", lane=lane or thread_id, origin=origin):
        if lane is None:
            unmanaged_thread_check(thread_id, hint=NOT_FOUND_HINT)
        host = lane.host if lane else settings.DISPATCH_HOST
        with gateway.rpc_errors(tolerate=missing_thread_tolerated(lane)) as missing:
            result = gateway.rpc(host, "thread/unarchive", {"threadId": thread_id})
            thread = (result or {}).get("thread") or {}
        if missing.error is not None:
            detail = f"restored locally ({missing.error.message})"
        if lane is not None:
            status = attached_status(thread) if thread else Lane.Status.IDLE
            lane_mark_restored(lane_id=lane.pk, status=status)
            lane.refresh_from_db()
    audit_record(op="restore", lane=lane or thread_id, detail=detail, origin=origin)
    if lane is not None:
        lane_event(lane, LANE_RESTORED, origin, detail=detail)
    return lane, thread


def lane_fork(
    *,
    lane: Lane,
    name: str,
    cwd: str | None,
    model: str | None,
    sandbox: str | None,
    approval_policy: str | None,
    effort: str | None,
    last_turn_id: str | None,
    origin: Origin,
) -> Lane:
    """Fork a lane's thread into a new owned lane that keeps its settings."""
    with audit_failures(op="fork", lane=lane, origin=origin):
        name = clean_name(name)
        lane_title_free(title=name)
        cwd = thread_settings_check(
            host=lane.host,
            cwd=cwd,
            model=model or (lane.runtime_settings or {}).get("model"),
            approval_policy=approval_policy,
            effort=effort,
        )
        lane_prepare_write(lane)
        params: dict[str, Any] = {
            "threadId": lane.thread_id,
            "excludeTurns": True,
            **thread_settings_params(
                model=model, sandbox=sandbox, approval_policy=approval_policy
            ),
        }
        overrides = {
            "model": model,
            "sandbox": sandbox,
            "approval_policy": approval_policy,
            "effort": effort,
        }
        if cwd:
            params["cwd"] = cwd
        if last_turn_id:
            params["lastTurnId"] = last_turn_id
        with gateway.rpc_errors():
            result = lane_rpc(lane, "thread/fork", params)
        thread = result["thread"]
        runtime = {
            **(lane.runtime_settings or {}),
            **{k: v for k, v in overrides.items() if v},
        }
        forked = lane_register(
            thread_id=thread["id"],
            title=name,
            source=Lane.Source.OWN,
            cwd=str(result.get("cwd") or thread.get("cwd") or cwd or lane.cwd),
            host=lane.host,
            runtime_settings=runtime,
            model=str(result.get("model") or thread.get("model") or ""),
            model_provider=str(result.get("modelProvider") or ""),
        )
    audit_record(
        op="fork", lane=forked, detail=f"forked from {lane.ref}", origin=origin
    )
    try:
        rpc(forked, THREAD_NAME_SET, {"threadId": forked.thread_id, "name": name})
    except DispatchError:
        pass  # the title is ours either way
    return forked


def lane_rollback(*, lane: Lane, turns: int, origin: Origin) -> None:
    with audit_failures(op="rollback", lane=lane, origin=origin):
        lane_prepare_write(lane)
        lane_busy_check(lane)
        params = {"threadId": lane.thread_id, "numTurns": turns}
        with gateway.rpc_errors(tolerate=is_unknown_method_error) as unknown:
            lane_rpc(lane, THREAD_ROLLBACK, params)
        if unknown.error is not None:
            version = app_server_version(lane.host)
            raise CapabilityUnavailableError(
                f"rollback is unavailable: codex app-server {version} on host "
                f"{lane.host!r} has no thread/rollback method; nothing was changed",
                hint=(
                    "to continue from an earlier point, fork the lane instead: "
                    f"`dispatch lane fork {lane.ref} --name NAME --last-turn-id TURN`"
                    f" (turn ids: `dispatch tail {lane.ref}`)"
                ),
                data={"method": THREAD_ROLLBACK, "app_server_version": version},
            )
        lane_mark_rolled_back(lane_id=lane.pk)
        lane.refresh_from_db()
    audit_record(
        op="rollback", lane=lane, detail=f"rolled back {turns} turn(s)", origin=origin
    )


def lane_compact(*, lane: Lane, origin: Origin) -> dict[str, Any]:
    with audit_failures(op="compact", lane=lane, origin=origin):
        lane_prepare_write(lane)
        lane_busy_check(lane)
        with gateway.rpc_errors(tolerate=is_active_turn_error) as running:
            lane_rpc(lane, "thread/compact/start", {"threadId": lane.thread_id})
        if running.error is not None:
            raise LaneBusyError(
                f"lane {lane.ref} is running a turn; compact it when idle",
                hint=f"wait, or stop it with `dispatch stop {lane.ref}`",
            )
    audit_record(op="compact", lane=lane, detail="compaction started", origin=origin)
    return {"op": "compact", "detail": "compaction turn started", "turn_id": None}
