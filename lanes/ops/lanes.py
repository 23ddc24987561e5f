"""Lane ops: each verb authored once; surfaces are generated from these.

MCP groups follow intent (read / write / destroy) and never mix them; action
names are those of the tool our users come from.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import DispatchError
from dispatchsite.core.registry import OpContext, define_op
from lanes import services
from lanes.appserver.protocol import thread_status
from lanes.catalog import model_catalog
from lanes.history.discovery import threads_discover
from lanes.history.sync import lane_sync, sync_view
from lanes.history.transcript import transcript_items
from lanes.models import Lane, QueuedMessage
from lanes.models.index import LaneSyncState
from lanes.ops import schemas as s
from lanes.presenters import (
    goal_view,
    lane_identity,
    lane_list_item,
    thread_action_ref,
)
from lanes.selectors import resolve_lane

READ, WRITE, DESTROY = (
    "dispatch_thread_read",
    "dispatch_thread_write",
    "dispatch_thread_destroy",
)
DAEMON_READ = "dispatch_daemon_read"


def ack(lane: Lane, fields: dict[str, Any]) -> dict[str, Any]:
    lane.refresh_from_db()
    return {**lane_identity(lane), "accepted": True, **fields}


# -- create and deliver --------------------------------------------------------


def new(data: s.NewIn, ctx: OpContext) -> dict[str, Any]:
    result = services.lane_create(
        name=data.name,
        cwd=os.path.abspath(data.cwd or os.getcwd()),
        text=data.text,
        goal=data.goal,
        send=data.send,
        model=data.model,
        sandbox=data.sandbox,
        approval_policy=data.approval_policy,
        effort=data.effort,
        surface=ctx.surface,
    )
    return {
        **lane_row(result["lane"], {}),
        "message_accepted": result["message_accepted"],
        "goal_set": result["goal_set"],
    }


define_op(
    id="new",
    summary="create an owned lane (thread/start), maybe with a goal and first message",
    intent="write",
    idempotent=False,
    input=s.NewIn,
    output=s.NewOut,
    handler=new,
    cli="new",
    http=("POST", "/lanes"),
    mcp_tool=WRITE,
    mcp_action="new",
)


def sync_states(lanes: list[Lane]) -> dict[str, LaneSyncState]:
    ids = [lane.thread_id for lane in lanes]
    return {
        state.thread_id: state
        for state in LaneSyncState.objects.filter(thread_id__in=ids)
    }


def lane_row(lane: Lane, states: dict[str, LaneSyncState]) -> dict[str, Any]:
    return {**lane_list_item(lane), "sync": sync_view(states.get(lane.thread_id), lane)}


def attach(data: s.AttachIn, ctx: OpContext) -> dict[str, Any]:
    result = services.lane_attach(
        thread_id=data.thread, sync=data.sync, surface=ctx.surface
    )
    lane = result["lane"]
    if data.sync:
        try:
            # Bounded, resumable indexing of the history; attaching itself
            # already succeeded, so a failed pass is reported, not raised.
            lane_sync(lane=lane, surface=ctx.surface)
        except DispatchError:
            pass
        lane.refresh_from_db()
    return {**lane_row(lane, sync_states([lane])), "registered": result["registered"]}


define_op(
    id="attach",
    summary="register an existing Codex thread as an attached (read-only) lane",
    intent="write",
    idempotent=True,
    input=s.AttachIn,
    output=s.AttachOut,
    handler=attach,
    cli="attach",
    positionals=("thread",),
    http=("POST", "/lanes/attach"),
    mcp_tool=WRITE,
    mcp_action="attach",
)


def send(data: s.SendIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    result = services.lane_send(
        lane=lane,
        text=data.text,
        mode=data.mode,
        intro=data.intro,
        caller_thread_id=data.caller_thread_id or ctx.caller_thread_id,
        surface=ctx.surface,
    )
    return ack(lane, result)


define_op(
    id="send",
    summary="send, steer, queue, interject or inject context into a lane",
    intent="write",
    idempotent=False,
    input=s.SendIn,
    output=s.ActionAckOut,
    handler=send,
    cli="send",
    positionals=("lane", "text"),
    http=("POST", "/lanes/{lane}/send"),
    mcp_tool=WRITE,
    mcp_action="send",
)


def stop(data: s.StopIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    return ack(lane, services.lane_stop(lane=lane, surface=ctx.surface))


define_op(
    id="stop",
    summary="interrupt the active turn of a lane (cancel only)",
    intent="write",
    idempotent=True,
    input=s.StopIn,
    output=s.ActionAckOut,
    handler=stop,
    cli="stop",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/stop"),
    mcp_tool=WRITE,
    mcp_action="stop",
)


# -- read ----------------------------------------------------------------------


def roster(data: s.ListIn, ctx: OpContext) -> dict[str, Any]:
    lanes = list(Lane.objects.visible(include_archived=data.include_archived))
    states = sync_states(lanes)
    return {"lanes": [lane_row(lane, states) for lane in lanes]}


define_op(
    id="roster",
    summary="list managed lanes",
    intent="read",
    idempotent=True,
    input=s.ListIn,
    output=s.ListOut,
    handler=roster,
    cli="list",
    http=("GET", "/lanes"),
    mcp_tool=READ,
    mcp_action="roster",
)


def discover(data: s.DiscoverIn, ctx: OpContext) -> dict[str, Any]:
    return {
        "sessions": threads_discover(
            host=settings.DISPATCH_HOST, limit=data.limit, archived=data.archived
        )
    }


define_op(
    id="discover",
    summary="list Codex threads that no lane manages (thread/list, newest first)",
    intent="read",
    idempotent=True,
    input=s.DiscoverIn,
    output=s.DiscoverOut,
    handler=discover,
    cli="list --unmanaged",
    http=("GET", "/lanes/unmanaged"),
    mcp_tool=READ,
    mcp_action="discover",
)


def show(data: s.GetIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    counts = {status: 0 for status in QueuedMessage.Status.values}
    for status in lane.queue.values_list("status", flat=True):
        counts[status] += 1
    out: dict[str, Any] = {
        **lane_row(lane, sync_states([lane])),
        "lane": lane.thread_id,
        "managed": True,
        "queue": counts,
        "transcript": [],
        "transcript_source": None,
    }
    if data.include_transcript:
        out["transcript"], out["transcript_source"] = transcript_items(
            lane=lane, limit=data.max_items
        )
    return out


define_op(
    id="show",
    summary="show one lane (latest turn, queue, optional transcript)",
    intent="read",
    idempotent=True,
    input=s.GetIn,
    output=s.GetOut,
    handler=show,
    cli="get",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}"),
    mcp_tool=READ,
    mcp_action="show",
)


def transcript(data: s.TranscriptIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    items, source = transcript_items(lane=lane, limit=data.limit)
    return {**lane_identity(lane), "items": items, "transcript_source": source}


define_op(
    id="transcript",
    summary="the last items of a lane's transcript, oldest first",
    intent="read",
    idempotent=True,
    input=s.TranscriptIn,
    output=s.TranscriptOut,
    handler=transcript,
    cli="tail",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/transcript"),
    mcp_tool=READ,
    mcp_action="transcript",
)


# -- thread actions (any thread, managed or not) --------------------------------------


def rename(data: s.RenameIn, ctx: OpContext) -> dict[str, Any]:
    lane, meta = services.thread_rename(
        target=data.old, new=data.new, surface=ctx.surface
    )
    return thread_action_ref(
        lane=lane,
        thread_id=data.old.strip(),
        status=thread_status(meta),
        cwd=meta.get("cwd"),
    )


define_op(
    id="lane-rename",
    summary="rename a lane, or name an unmanaged Codex thread",
    intent="write",
    idempotent=False,
    input=s.RenameIn,
    output=s.ThreadActionRefOut,
    handler=rename,
    cli="rename",
    positionals=("old", "new"),
    http=("POST", "/threads/{old}/rename"),
    mcp_tool=WRITE,
    mcp_action="rename",
)


def archive(data: s.TargetIn, ctx: OpContext) -> dict[str, Any]:
    lane, meta = services.thread_archive(target=data.target, surface=ctx.surface)
    return thread_action_ref(
        lane=lane,
        thread_id=data.target.strip(),
        status="archived",
        cwd=meta.get("cwd"),
    )


define_op(
    id="archive",
    summary="archive a lane or Codex thread (history is kept)",
    intent="destroy",
    idempotent=True,
    input=s.TargetIn,
    output=s.ThreadActionRefOut,
    handler=archive,
    cli="archive",
    positionals=("target",),
    http=("POST", "/threads/{target}/archive"),
    mcp_tool=DESTROY,
    mcp_action="archive",
)


def restore(data: s.TargetIn, ctx: OpContext) -> dict[str, Any]:
    lane, thread = services.thread_restore(target=data.target, surface=ctx.surface)
    return thread_action_ref(
        lane=lane,
        thread_id=data.target.strip(),
        status=thread_status(thread) if thread else "unknown",
        cwd=thread.get("cwd"),
    )


define_op(
    id="restore",
    summary="unarchive a lane or Codex thread (never starts a turn or drains a queue)",
    intent="write",
    idempotent=True,
    input=s.TargetIn,
    output=s.ThreadActionRefOut,
    handler=restore,
    cli="restore",
    positionals=("target",),
    http=("POST", "/threads/{target}/restore"),
    mcp_tool=WRITE,
    mcp_action="restore",
)


# -- goals ---------------------------------------------------------------------


def goal_get(data: s.LaneSelectorIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    goal = services.goal_fetch(lane=lane)
    return {**lane_identity(lane), "goal": goal_view(goal)}


define_op(
    id="goal-get",
    summary="show a lane's native Codex goal",
    intent="read",
    idempotent=True,
    input=s.LaneSelectorIn,
    output=s.GoalViewOut,
    handler=goal_get,
    cli="goal status",
    positionals=("lane",),
    http=("GET", "/lanes/{lane}/goal"),
    mcp_tool=READ,
    mcp_action="goal_get",
)


def goal_set(data: s.GoalSetIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    goal = services.lane_goal_set(
        lane=lane,
        objective=data.objective,
        status=data.status,
        token_budget=data.token_budget,
        surface=ctx.surface,
    )
    lane.refresh_from_db()
    return {**lane_identity(lane), "goal": goal_view(goal)}


define_op(
    id="goal-set",
    summary="create or update a lane's goal (an active goal starts turns by itself)",
    intent="write",
    idempotent=False,
    input=s.GoalSetIn,
    output=s.GoalViewOut,
    handler=goal_set,
    cli="goal set",
    positionals=("lane", "objective"),
    http=("POST", "/lanes/{lane}/goal"),
    mcp_tool=WRITE,
    mcp_action="goal_set",
)


def goal_clear(data: s.LaneSelectorIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    cleared = services.lane_goal_clear(lane=lane, surface=ctx.surface)
    lane.refresh_from_db()
    return {**lane_identity(lane), "goal": None, "cleared": cleared}


define_op(
    id="goal-clear",
    summary="clear a lane's goal",
    intent="destroy",
    idempotent=True,
    input=s.LaneSelectorIn,
    output=s.GoalClearOut,
    handler=goal_clear,
    cli="goal clear",
    positionals=("lane",),
    http=("DELETE", "/lanes/{lane}/goal"),
    mcp_tool=DESTROY,
    mcp_action="goal_clear",
)


# -- history-shaping verbs -----------------------------------------------------


def fork(data: s.ForkIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    forked = services.lane_fork(
        lane=lane,
        name=data.name,
        cwd=os.path.abspath(data.cwd) if data.cwd else None,
        model=data.model,
        sandbox=data.sandbox,
        approval_policy=data.approval_policy,
        effort=data.effort,
        last_turn_id=data.last_turn_id,
        surface=ctx.surface,
    )
    return {
        **lane_row(forked, {}),
        "forked_from": {"ref": lane.ref, "id": lane.thread_id},
    }


define_op(
    id="fork",
    summary="fork a lane's thread into a new owned lane (thread/fork)",
    intent="write",
    idempotent=False,
    input=s.ForkIn,
    output=s.ForkOut,
    handler=fork,
    cli="lane fork",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/fork"),
    mcp_tool=WRITE,
    mcp_action="fork",
)


def rollback(data: s.RollbackIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    services.lane_rollback(lane=lane, turns=data.turns, surface=ctx.surface)
    lane.refresh_from_db()
    return {**lane_identity(lane), "turns": data.turns}


define_op(
    id="rollback",
    summary="drop a lane's latest turns from its history (files are not reverted)",
    intent="destroy",
    idempotent=False,
    input=s.RollbackIn,
    output=s.RollbackOut,
    handler=rollback,
    cli="lane rollback",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/rollback"),
    mcp_tool=DESTROY,
    mcp_action="rollback",
)


def compact(data: s.LaneSelectorIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    return ack(lane, services.lane_compact(lane=lane, surface=ctx.surface))


define_op(
    id="compact",
    summary="compact a lane's context (thread/compact/start)",
    intent="write",
    idempotent=False,
    input=s.LaneSelectorIn,
    output=s.ActionAckOut,
    handler=compact,
    cli="lane compact",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/compact"),
    mcp_tool=WRITE,
    mcp_action="compact",
)


# -- catalog -------------------------------------------------------------------


def models(data: s.ModelsIn, ctx: OpContext) -> dict[str, Any]:
    return model_catalog(
        host=settings.DISPATCH_HOST,
        refresh=data.refresh,
        include_hidden=data.include_hidden,
    )


define_op(
    id="models",
    summary="the model catalog (model/list + config/read), cached",
    intent="read",
    idempotent=True,
    input=s.ModelsIn,
    output=s.ModelCatalogOut,
    handler=models,
    cli="models",
    http=("GET", "/models"),
    mcp_tool=DAEMON_READ,
    mcp_action="models",
)
