"""The one write path for lanes. Surfaces parse input and call these.

Every write leaves an audit row, including refused and failed ones (outcome
= the error code), so `daemon log` tells what was attempted, not only what
worked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatchsite.config import load_policy
from dispatchsite.errors import (
    AppServerError,
    AuthorityError,
    CapabilityUnavailableError,
    DispatchError,
    LaneBusyError,
    ValidationError,
)
from lanes import gateway
from lanes.models import AuditEntry, Lane, WorkerLease, ref_payload
from lanes.presenters import ATTACHED_LOCK_REASON, lane_writable, thread_status
from lanes.queue import queued_message_enqueue, queued_message_pending_count
from lanes.selectors import resolve_lane_or_thread
from lanes.turns import lane_mark_turn_started, text_input, turn_start_params

REF_MIXER = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TURN_END_WAIT_SECONDS = 10.0
ATTACH_TIMEOUT_SECONDS = 10.0
TITLE_MAX = 200
# Messages codex uses when it has no thread (loaded or on disk) for an id.
THREAD_MISSING_MARKERS = ("thread not found", "no rollout", "thread not loaded")


# -- audit ---------------------------------------------------------------------


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


# -- app-server calls ----------------------------------------------------------


def thread_missing(exc: gateway.RpcFailed) -> bool:
    text = exc.message.lower()
    return any(marker in text for marker in THREAD_MISSING_MARKERS)


def method_unavailable(exc: gateway.RpcFailed) -> bool:
    # codex answers an unknown method with "unknown variant `<method>`".
    return "unknown variant" in exc.message


def rpc(lane: Lane, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
    return gateway.rpc(lane.host, method, params, **kwargs)


def thread_load(lane: Lane) -> None:
    """Load the thread into this host's app-server (metadata only)."""
    try:
        rpc(lane, "thread/resume", {"threadId": lane.thread_id, "excludeTurns": True})
    except gateway.RpcFailed as exc:
        raise gateway.classify_rpc_error(exc) from None


def lane_rpc(lane: Lane, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
    """A write on a lane's thread; a thread the app-server has not loaded
    (restored from the archive, or never resumed) is loaded once and retried."""
    try:
        return rpc(lane, method, params, **kwargs)
    except gateway.RpcFailed as exc:
        if not thread_missing(exc):
            raise
    thread_load(lane)
    try:
        return rpc(lane, method, params, **kwargs)
    except gateway.RpcFailed as exc:
        raise gateway.classify_rpc_error(exc) from None


def thread_read(
    *, host: str, thread_id: str, timeout: float | None = None
) -> dict[str, Any]:
    """Thread metadata (no turns); NotFoundError when codex has no such thread."""
    try:
        result = gateway.rpc(
            host,
            "thread/read",
            {"threadId": thread_id, "includeTurns": False},
            timeout=timeout,
        )
    except gateway.RpcFailed as exc:
        raise gateway.classify_rpc_error(exc) from None
    thread = result.get("thread") if isinstance(result, dict) else None
    if not isinstance(thread, dict) or thread.get("id") != thread_id:
        raise AppServerError(
            f"thread/read returned an unexpected payload for {thread_id}",
            hint="check the codex version (`dispatch doctor`)",
        )
    return thread


def app_server_version(host: str) -> str:
    lease = WorkerLease.objects.filter(host=host).first()
    return (lease.app_server_version if lease else "") or "unknown"


# -- registration --------------------------------------------------------------


def lane_ref_allocate(*, thread_id: str) -> str:
    payload = ref_payload(thread_id)
    taken = set(
        Lane.objects.filter(ref__startswith=payload).values_list("ref", flat=True)
    )
    for mixer in REF_MIXER:
        if payload + mixer not in taken:
            return payload + mixer
    raise DispatchError(f"no free ref for thread {thread_id}")


def clean_name(name: str) -> str:
    """A lane name as given on the CLI: '@x' and 'x' name the same lane."""
    cleaned = name.strip().removeprefix("@").strip()
    if not cleaned:
        raise ValidationError("the lane name must not be empty", hint="pass a name")
    if len(cleaned) > TITLE_MAX:
        raise ValidationError(
            f"the lane name is longer than {TITLE_MAX} characters",
            hint="choose a shorter name",
        )
    return cleaned


def lane_title_free(*, title: str, exclude: Lane | None = None) -> None:
    clash = Lane.objects.filter(title=title)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    other = clash.first()
    if other is not None:
        raise ValidationError(
            f"a lane named {title!r} already exists ({other.ref})",
            hint="choose another name, or rename the existing lane",
        )


def lane_title_unique(*, base: str) -> str:
    """`base`, or `base-2`, `base-3`... whichever no lane uses yet."""
    base = base[: TITLE_MAX - 4]
    if not Lane.objects.filter(title=base).exists():
        return base
    taken = set(
        Lane.objects.filter(title__startswith=f"{base}-").values_list(
            "title", flat=True
        )
    )
    for n in range(2, 1000):
        if f"{base}-{n}" not in taken:
            return f"{base}-{n}"
    raise ValidationError(f"too many lanes named {base!r}", hint="rename some lanes")


def lane_register(
    *,
    thread_id: str,
    title: str,
    source: str,
    cwd: str,
    host: str,
    runtime_settings: dict[str, Any] | None = None,
    model: str = "",
    model_provider: str = "",
    status: str = Lane.Status.IDLE,
) -> Lane:
    for _attempt in range(3):
        lane = Lane(
            thread_id=thread_id,
            ref=lane_ref_allocate(thread_id=thread_id),
            title=title,
            source=source,
            cwd=cwd,
            host=host,
            status=status,
            runtime_settings=runtime_settings or {},
            model=model,
            model_provider=model_provider,
        )
        lane.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                lane.save()
            return lane
        except IntegrityError:
            if Lane.objects.filter(thread_id=thread_id).exists():
                return Lane.objects.get(thread_id=thread_id)
            lane_title_free(title=title)
    raise DispatchError(f"could not register thread {thread_id}")


# -- authority -----------------------------------------------------------------


def require_writable(lane: Lane) -> None:
    if not lane_writable(lane, load_policy()):
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


# -- turns ---------------------------------------------------------------------


def lane_turn_request_failed(*, lane: Lane, error: DispatchError) -> None:
    Lane.objects.filter(pk=lane.pk).update(
        status=Lane.Status.ERROR,
        latest_turn_status="failed",
        latest_error=error.message[:2000],
        latest_error_at=timezone.now(),
    )
    lane.refresh_from_db()


def lane_turn_start(
    *, lane: Lane, text: str, audit_op: str | None = None, surface: str = ""
) -> str:
    try:
        result = lane_rpc(lane, "turn/start", turn_start_params(lane, text))
    except DispatchError as exc:
        lane_turn_request_failed(lane=lane, error=exc)
        raise
    turn_id = result["turn"]["id"]
    # One write transaction, taken after the RPC: the worker is journaling
    # this very turn and must not wait on a lock held across a round trip.
    with transaction.atomic():
        lane_mark_turn_started(lane_id=lane.pk, turn_id=turn_id)
        if audit_op:
            audit_record(op=audit_op, lane=lane, detail=text[:120], surface=surface)
    lane.refresh_from_db()
    return turn_id


def wait_turn_end(
    *, lane: Lane, turn_id: str, timeout: float = TURN_END_WAIT_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lane.refresh_from_db(fields=["active_turn_id", "status", "latest_turn_status"])
        if lane.active_turn_id != turn_id:
            return
        time.sleep(0.02)
    raise AppServerError(
        f"turn {turn_id} of lane {lane.ref} did not end within {timeout:g} s "
        "after the interrupt"
    )


# -- new -----------------------------------------------------------------------


def goal_set_remote(
    *,
    lane: Lane,
    objective: str | None,
    status: str | None = None,
    token_budget: int | None = None,
) -> dict[str, Any] | None:
    params: dict[str, Any] = {"threadId": lane.thread_id}
    if objective is not None:
        params["objective"] = objective
    if status is not None:
        params["status"] = status
    if token_budget is not None:
        params["tokenBudget"] = token_budget
    goal = lane_rpc(lane, "thread/goal/set", params).get("goal")
    Lane.objects.filter(pk=lane.pk).update(goal=goal)
    lane.goal = goal
    return goal


def lane_create(
    *,
    name: str,
    cwd: str,
    text: str | None,
    goal: str | None,
    send: bool,
    model: str | None,
    sandbox: str | None,
    approval_policy: str | None,
    effort: str | None,
    surface: str,
) -> dict[str, Any]:
    """Start a thread, register it as an owned lane, set its goal, send its text."""
    if text is not None and text.lstrip().startswith("/goal") and goal is None:
        raise ValidationError(
            'slash commands are not interpreted: `--text "/goal ..."` would only '
            "look goal-driven",
            hint="pass the objective with --goal instead",
        )
    if goal is not None and not goal.strip():
        raise ValidationError("--goal must not be empty", hint="pass an objective")
    name = clean_name(name)
    lane_title_free(title=name)
    host = settings.DISPATCH_HOST
    runtime = {
        key: value
        for key, value in {
            "model": model,
            "sandbox": sandbox,
            "approval_policy": approval_policy,
            "effort": effort,
        }.items()
        if value
    }
    start: dict[str, Any] = {"cwd": cwd}
    if model:
        start["model"] = model
    if sandbox:
        start["sandbox"] = sandbox
    if approval_policy:
        start["approvalPolicy"] = approval_policy
    with audit_failures(op="new", lane=None, surface=surface):
        started = gateway.rpc(host, "thread/start", start)
    thread = started["thread"]
    lane = lane_register(
        thread_id=thread["id"],
        title=name,
        source=Lane.Source.OWN,
        cwd=started.get("cwd") or cwd,
        host=host,
        runtime_settings=runtime,
        model=started.get("model") or "",
        model_provider=started.get("modelProvider") or "",
    )
    audit_record(op="new", lane=lane, detail=name, surface=surface)
    try:
        rpc(lane, "thread/name/set", {"threadId": lane.thread_id, "name": name})
    except DispatchError:
        pass  # the lane works without the name; the title stays ours
    message_accepted = False
    goal_set = False
    will_send = send and bool(text)
    with audit_failures(op="new", lane=lane, surface=surface):
        if goal is not None:
            # An active goal starts a turn on its own, and a first message
            # sent after it would become a steer of that turn (losing its
            # per-turn settings). So the goal is created paused, the first
            # turn starts, and only then is the goal activated. With
            # --no-send nothing may start at all, so it stays paused.
            first_status = "active" if send and not will_send else "paused"
            goal_set_remote(lane=lane, objective=goal.strip(), status=first_status)
            goal_set = True
        if will_send:
            assert text is not None
            lane_turn_start(lane=lane, text=text)
            message_accepted = True
            if goal is not None:
                goal_set_remote(lane=lane, objective=None, status="active")
    lane.refresh_from_db()
    return {"lane": lane, "message_accepted": message_accepted, "goal_set": goal_set}


# -- send / stop ---------------------------------------------------------------


def intro_footer(*, caller_thread_id: str | None) -> str:
    if not caller_thread_id:
        raise ValidationError(
            "--intro needs CODEX_THREAD_ID (the sending Codex thread)",
            hint="run from inside a managed Codex lane, or drop --intro",
        )
    sender = Lane.objects.filter(thread_id=caller_thread_id).first()
    if sender is None:
        raise ValidationError(
            f"--intro: the calling thread {caller_thread_id} is not a managed lane",
            hint="attach it first with `dispatch attach <thread-id>`",
        )
    return (
        f"\n\ndispatch (dm): [@{sender.title}](codex://threads/{sender.thread_id}) "
        f'`{sender.ref}`\n↳ reply `dispatch send {sender.ref} "..."`'
    )


SEND_AUDIT_OPS = {
    "send": "send",
    "steer": "steer",
    "context": "brief",
    "interject": "interject",
    "queue": "queue",
}


def lane_send(
    *,
    lane: Lane,
    text: str,
    mode: str,
    caller_thread_id: str | None = None,
    intro: bool = False,
    surface: str,
) -> dict[str, Any]:
    """Deliver text to a lane in one of five modes; returns the ack fields."""
    op = SEND_AUDIT_OPS.get(mode)
    if op is None:
        raise ValidationError(
            f"unknown send mode {mode!r}", hint="use send|steer|queue|interject|context"
        )
    with audit_failures(op=op, lane=lane, surface=surface):
        if not text.strip():
            raise ValidationError("message text is empty", hint="pass the text to send")
        lane_prepare_write(lane)
        if intro:
            text += intro_footer(caller_thread_id=caller_thread_id)
        if mode == "queue":
            return lane_queue(lane=lane, text=text, surface=surface)
        if mode == "send":
            turn_id = lane_turn_start(
                lane=lane, text=text, audit_op="send", surface=surface
            )
            return {
                "op": "send",
                "detail": f"turn {turn_id} started",
                "turn_id": turn_id,
            }
        if mode == "steer":
            return lane_steer(lane=lane, text=text, surface=surface)
        if mode == "context":
            lane_rpc(
                lane,
                "thread/inject_items",
                {
                    "threadId": lane.thread_id,
                    "items": [
                        {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": text}],
                        }
                    ],
                },
            )
            audit_record(op="brief", lane=lane, detail=text[:120], surface=surface)
            return {
                "op": "brief",
                "detail": "context injected; no turn started",
                "turn_id": None,
            }
        return lane_interject(lane=lane, text=text, surface=surface)


def lane_steer(*, lane: Lane, text: str, surface: str) -> dict[str, Any]:
    active = lane.active_turn_id
    if not active:
        raise ValidationError(
            f"lane {lane.ref} has no active turn to steer",
            hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
        )
    try:
        result = rpc(
            lane,
            "turn/steer",
            {
                "threadId": lane.thread_id,
                "expectedTurnId": active,
                "input": text_input(text),
            },
        )
    except gateway.RpcFailed as exc:
        if "no active turn" in exc.message:
            raise ValidationError(
                f"lane {lane.ref}: the turn {active} already ended; nothing to steer",
                hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
            ) from None
        raise
    audit_record(op="steer", lane=lane, detail=text[:120], surface=surface)
    return {
        "op": "steer",
        "detail": f"steered turn {active}",
        "turn_id": result.get("turnId", active),
    }


def lane_interject(*, lane: Lane, text: str, surface: str) -> dict[str, Any]:
    active = lane.active_turn_id
    if not active:
        raise ValidationError(
            f"lane {lane.ref} has no active turn to interject into",
            hint=f"send a new turn instead: `dispatch send {lane.ref} ...`",
        )
    try:
        rpc(lane, "turn/interrupt", {"threadId": lane.thread_id, "turnId": active})
    except gateway.RpcFailed as exc:
        # The turn ended on its own meanwhile: the new text still goes out.
        if "no active turn" not in exc.message:
            raise
    audit_record(op="interrupt", lane=lane, detail="interject", surface=surface)
    wait_turn_end(lane=lane, turn_id=active)
    turn_id = lane_turn_start(
        lane=lane, text=text, audit_op="interject", surface=surface
    )
    return {
        "op": "interject",
        "detail": f"interrupted {active}; turn {turn_id} started",
        "turn_id": turn_id,
    }


def lane_queue(*, lane: Lane, text: str, surface: str) -> dict[str, Any]:
    message = queued_message_enqueue(lane=lane, text=text)
    audit_record(
        op="queue", lane=lane, detail=f"queued message {message.pk}", surface=surface
    )
    lane.refresh_from_db()
    if lane.status == Lane.Status.IDLE and not lane.queue_held:
        gateway.notify_worker(
            lane.host, {"type": "appserver.drain", "thread_id": lane.thread_id}
        )
    pending = queued_message_pending_count(lane=lane)
    return {
        "op": "queue",
        "detail": f"queued message {message.pk}; pending={pending}",
        "turn_id": None,
        "queued_message_id": message.pk,
    }


def lane_stop(*, lane: Lane, surface: str) -> dict[str, Any]:
    with audit_failures(op="stop", lane=lane, surface=surface):
        lane_prepare_write(lane)
        active = lane.active_turn_id
        if not active:
            raise ValidationError(
                f"lane {lane.ref} has no active turn to stop", hint="nothing to do"
            )
        rpc(lane, "turn/interrupt", {"threadId": lane.thread_id, "turnId": active})
    audit_record(op="stop", lane=lane, detail=f"interrupted {active}", surface=surface)
    return {"op": "stop", "detail": f"interrupted turn {active}", "turn_id": active}


# -- attach --------------------------------------------------------------------


def attached_status(thread: dict[str, Any]) -> str:
    status = thread_status(thread)
    # Not loaded here means nothing runs in *this* app-server: idle to us.
    return Lane.Status.IDLE if status == "not_loaded" else status


def lane_attach(*, thread_id: str, sync: bool, surface: str) -> dict[str, Any]:
    """Register an existing thread as an attached lane, from metadata only.

    Idempotent, and never half-registered: the lane row and its audit row
    are written in one transaction after the metadata read succeeded.
    """
    thread_id = thread_id.strip()
    if not thread_id or thread_id.startswith("@"):
        raise ValidationError(
            f"attach needs a full Codex thread id, not {thread_id!r}",
            hint="find ids with `dispatch list --unmanaged`",
        )
    existing = (
        Lane.objects.filter(thread_id=thread_id).first()
        or Lane.objects.filter(ref=thread_id).first()
    )
    if existing is not None:
        return {
            "lane": existing,
            "registered": False,
            "sync": lane_sync_latest(lane=existing, surface=surface) if sync else None,
        }
    host = settings.DISPATCH_HOST
    with audit_failures(op="attach", lane=thread_id, surface=surface):
        try:
            thread = thread_read(
                host=host, thread_id=thread_id, timeout=ATTACH_TIMEOUT_SECONDS
            )
        except AppServerError as exc:
            raise AppServerError(
                f"attach {thread_id}: {exc.message} (no lane registered)",
                hint=exc.hint,
                data=exc.data,
            ) from None
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
                        op="attach", lane=lane, detail=thread_id, surface=surface
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
        "sync": lane_sync_latest(lane=lane, surface=surface) if sync else None,
    }


def lane_sync_latest(*, lane: Lane, surface: str) -> dict[str, Any]:
    """Bring latest_turn up to date from the thread's newest turn."""
    with audit_failures(op="sync", lane=lane, surface=surface):
        try:
            page = rpc(
                lane,
                "thread/turns/list",
                {
                    "threadId": lane.thread_id,
                    "limit": 1,
                    "sortDirection": "desc",
                    "itemsView": "summary",
                },
                timeout=ATTACH_TIMEOUT_SECONDS,
            )
        except gateway.RpcFailed as exc:
            raise gateway.classify_rpc_error(exc) from None
    turns = page.get("data") or []
    now = timezone.now()
    if turns:
        turn = turns[0]
        status = {"inProgress": "started"}.get(turn.get("status"), turn.get("status"))
        error = turn.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        Lane.objects.filter(pk=lane.pk).update(
            latest_turn_id=str(turn.get("id") or ""),
            latest_turn_status=str(status or ""),
            latest_error=message[:2000],
            latest_error_at=now if message else None,
        )
        lane.refresh_from_db()
    audit_record(op="sync", lane=lane, detail="latest turn", surface=surface)
    return {
        "state": "metadata",
        "last_synced_at": now.isoformat(),
        "latest_turn_id": lane.latest_turn_id or None,
        "transcript_partial": True,
    }


# -- rename / archive / restore ------------------------------------------------


def thread_rename(
    *, target: str, new: str, surface: str
) -> tuple[Lane | None, dict[str, Any]]:
    """Rename a managed lane (title + Codex name) or an unmanaged thread."""
    lane, thread_id = resolve_lane_or_thread(target)
    with audit_failures(op="lane-rename", lane=lane or thread_id, surface=surface):
        name = clean_name(new)
        host = lane.host if lane else settings.DISPATCH_HOST
        meta: dict[str, Any] = {}
        if lane is None:
            meta = thread_read(host=host, thread_id=thread_id)
        else:
            lane_title_free(title=name, exclude=lane)
        detail = f"{target} -> {name}"
        try:
            gateway.rpc(host, "thread/name/set", {"threadId": thread_id, "name": name})
        except gateway.RpcFailed as exc:
            if lane is None or not thread_missing(exc):
                raise gateway.classify_rpc_error(exc) from None
            # The title is dispatch's own; codex has no thread to name yet.
            detail += " (local only: " + exc.message + ")"
        if lane is not None:
            try:
                with transaction.atomic():
                    Lane.objects.filter(pk=lane.pk).update(title=name)
            except IntegrityError:
                lane_title_free(title=name, exclude=lane)
                raise
            lane.refresh_from_db()
    audit_record(
        op="lane-rename", lane=lane or thread_id, detail=detail, surface=surface
    )
    return lane, meta


def thread_archive(*, target: str, surface: str) -> tuple[Lane | None, dict[str, Any]]:
    lane, thread_id = resolve_lane_or_thread(target)
    detail = "archived"
    with audit_failures(op="archive", lane=lane or thread_id, surface=surface):
        host = lane.host if lane else settings.DISPATCH_HOST
        meta = thread_read(host=host, thread_id=thread_id) if lane is None else {}
        try:
            gateway.rpc(host, "thread/archive", {"threadId": thread_id})
        except gateway.RpcFailed as exc:
            if lane is None or not thread_missing(exc):
                raise gateway.classify_rpc_error(exc) from None
            # e.g. "no rollout found" for a lane that never ran a turn: the
            # lane is still archived here, and its history is kept.
            detail = f"archived locally ({exc.message})"
        if lane is not None:
            Lane.objects.filter(pk=lane.pk).update(status=Lane.Status.ARCHIVED)
            lane.refresh_from_db()
    audit_record(op="archive", lane=lane or thread_id, detail=detail, surface=surface)
    return lane, meta


def thread_restore(*, target: str, surface: str) -> tuple[Lane | None, dict[str, Any]]:
    """Unarchive; never resumes the thread, starts a turn or drains the queue."""
    lane, thread_id = resolve_lane_or_thread(target)
    detail = "restored"
    thread: dict[str, Any] = {}
    with audit_failures(op="restore", lane=lane or thread_id, surface=surface):
        host = lane.host if lane else settings.DISPATCH_HOST
        try:
            result = gateway.rpc(host, "thread/unarchive", {"threadId": thread_id})
            thread = (result or {}).get("thread") or {}
        except gateway.RpcFailed as exc:
            if lane is None or not thread_missing(exc):
                raise gateway.classify_rpc_error(exc) from None
            detail = f"restored locally ({exc.message})"
        if lane is not None:
            status = attached_status(thread) if thread else Lane.Status.IDLE
            if status not in Lane.Status.values:
                status = Lane.Status.IDLE
            Lane.objects.filter(pk=lane.pk).update(status=status)
            lane.refresh_from_db()
    audit_record(op="restore", lane=lane or thread_id, detail=detail, surface=surface)
    return lane, thread


# -- goals ---------------------------------------------------------------------


def goal_fetch(*, lane: Lane) -> dict[str, Any] | None:
    try:
        result = rpc(lane, "thread/goal/get", {"threadId": lane.thread_id})
    except gateway.RpcFailed as exc:
        raise gateway.classify_rpc_error(exc) from None
    goal = (result or {}).get("goal")
    if goal != lane.goal:
        # Keep the mirror honest for lanes whose events this host never sees.
        Lane.objects.filter(pk=lane.pk).update(goal=goal)
        lane.goal = goal
    return goal


def lane_goal_set(
    *,
    lane: Lane,
    objective: str | None,
    status: str | None,
    token_budget: int | None,
    surface: str,
) -> dict[str, Any] | None:
    with audit_failures(op="goal-set", lane=lane, surface=surface):
        if objective is None and status is None and token_budget is None:
            raise ValidationError(
                "goal set needs an objective, --status or --token-budget",
                hint=f'e.g. `dispatch goal set {lane.ref} "ship the fix"`',
            )
        if objective is not None:
            objective = objective.strip()
            if not objective:
                raise ValidationError("the goal objective is empty", hint="pass text")
        lane_prepare_write(lane)
        if objective is None and goal_fetch(lane=lane) is None:
            raise ValidationError(
                f"lane {lane.ref} has no goal yet: an objective is required to "
                "create one (status and token_budget only update an existing goal)",
                hint=f'pass an objective: `dispatch goal set {lane.ref} "..."`',
            )
        try:
            goal = goal_set_remote(
                lane=lane, objective=objective, status=status, token_budget=token_budget
            )
        except gateway.RpcFailed as exc:
            raise gateway.classify_rpc_error(exc) from None
    parts = [
        f"{k}={v}"
        for k, v in (("status", status), ("token_budget", token_budget))
        if v is not None
    ]
    audit_record(
        op="goal-set",
        lane=lane,
        detail=" ".join([objective[:100] if objective else "", *parts]).strip(),
        surface=surface,
    )
    return goal


def lane_goal_clear(*, lane: Lane, surface: str) -> bool:
    with audit_failures(op="goal-clear", lane=lane, surface=surface):
        lane_prepare_write(lane)
        try:
            result = lane_rpc(lane, "thread/goal/clear", {"threadId": lane.thread_id})
        except gateway.RpcFailed as exc:
            raise gateway.classify_rpc_error(exc) from None
        Lane.objects.filter(pk=lane.pk).update(goal=None)
        lane.goal = None
    cleared = bool((result or {}).get("cleared", True))
    audit_record(
        op="goal-clear",
        lane=lane,
        detail="cleared" if cleared else "no goal",
        surface=surface,
    )
    return cleared


# -- fork / rollback / compact -------------------------------------------------


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
    surface: str,
) -> Lane:
    """Fork a lane's thread into a new owned lane that keeps its settings."""
    with audit_failures(op="fork", lane=lane, surface=surface):
        name = clean_name(name)
        lane_title_free(title=name)
        lane_prepare_write(lane)
        params: dict[str, Any] = {"threadId": lane.thread_id, "excludeTurns": True}
        overrides = {
            "model": model,
            "sandbox": sandbox,
            "approval_policy": approval_policy,
            "effort": effort,
        }
        if cwd:
            params["cwd"] = cwd
        if model:
            params["model"] = model
        if sandbox:
            params["sandbox"] = sandbox
        if approval_policy:
            params["approvalPolicy"] = approval_policy
        if last_turn_id:
            params["lastTurnId"] = last_turn_id
        try:
            result = lane_rpc(lane, "thread/fork", params)
        except gateway.RpcFailed as exc:
            raise gateway.classify_rpc_error(exc) from None
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
        op="fork", lane=forked, detail=f"forked from {lane.ref}", surface=surface
    )
    try:
        rpc(forked, "thread/name/set", {"threadId": forked.thread_id, "name": name})
    except DispatchError:
        pass  # the title is ours either way
    return forked


def lane_rollback(*, lane: Lane, turns: int, surface: str) -> None:
    with audit_failures(op="rollback", lane=lane, surface=surface):
        lane_prepare_write(lane)
        lane_busy_check(lane)
        try:
            lane_rpc(
                lane, "thread/rollback", {"threadId": lane.thread_id, "numTurns": turns}
            )
        except gateway.RpcFailed as exc:
            if not method_unavailable(exc):
                raise gateway.classify_rpc_error(exc) from None
            version = app_server_version(lane.host)
            raise CapabilityUnavailableError(
                f"rollback is unavailable: codex app-server {version} on host "
                f"{lane.host!r} has no thread/rollback method; nothing was changed",
                hint=(
                    "to continue from an earlier point, fork the lane instead: "
                    f"`dispatch lane fork {lane.ref} --name NAME --last-turn-id TURN`"
                    f" (turn ids: `dispatch tail {lane.ref}`)"
                ),
                data={"method": "thread/rollback", "app_server_version": version},
            ) from None
        Lane.objects.filter(pk=lane.pk).update(status=Lane.Status.IDLE)
        lane.refresh_from_db()
    audit_record(
        op="rollback", lane=lane, detail=f"rolled back {turns} turn(s)", surface=surface
    )


def lane_compact(*, lane: Lane, surface: str) -> dict[str, Any]:
    with audit_failures(op="compact", lane=lane, surface=surface):
        lane_prepare_write(lane)
        lane_busy_check(lane)
        try:
            lane_rpc(lane, "thread/compact/start", {"threadId": lane.thread_id})
        except gateway.RpcFailed as exc:
            if "active turn" in exc.message:
                raise LaneBusyError(
                    f"lane {lane.ref} is running a turn; compact it when idle",
                    hint=f"wait, or stop it with `dispatch stop {lane.ref}`",
                ) from None
            raise gateway.classify_rpc_error(exc) from None
    audit_record(op="compact", lane=lane, detail="compaction started", surface=surface)
    return {"op": "compact", "detail": "compaction turn started", "turn_id": None}
