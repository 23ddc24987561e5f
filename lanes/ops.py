"""Lane ops: each verb authored once; surfaces are generated from these."""

from __future__ import annotations

import os
from typing import Any

from dispatchsite.ops import OpContext, define_op
from lanes import schemas as s
from lanes import services
from lanes.models import Lane, QueuedMessage
from lanes.presenters import lane_identity, lane_list_item
from lanes.selectors import resolve_lane

READ, WRITE, DESTROY = "dispatch_thread_read", "dispatch_thread_write", "dispatch_thread_destroy"


def new(data: s.NewIn, ctx: OpContext) -> dict[str, Any]:
    result = services.lane_create(
        name=data.name, cwd=os.path.abspath(data.cwd or os.getcwd()), text=data.text,
        goal=data.goal, send=data.send, model=data.model, sandbox=data.sandbox,
        approval_policy=data.approval_policy, effort=data.effort, surface=ctx.surface,
    )
    return {
        **lane_list_item(result["lane"]),
        "message_accepted": result["message_accepted"],
        "goal_set": result["goal_set"],
    }


define_op(
    id="new", summary="create an owned lane (thread/start), optionally with a goal and first message",
    intent="write", idempotent=False, input=s.NewIn, output=s.NewOut, handler=new,
    cli="new", http=("POST", "/lanes"), mcp_tool=WRITE, mcp_action="new",
)


def send(data: s.SendIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    ack = services.lane_send(
        lane=lane, text=data.text, mode=data.mode, intro=data.intro,
        caller_thread_id=data.caller_thread_id or ctx.caller_thread_id, surface=ctx.surface,
    )
    lane.refresh_from_db()
    return {**lane_identity(lane), "accepted": True, **ack}


define_op(
    id="send", summary="send, steer, queue, interject or inject context into a lane",
    intent="write", idempotent=False, input=s.SendIn, output=s.ActionAckOut, handler=send,
    cli="send", positionals=("lane", "text"), http=("POST", "/lanes/{lane}/send"),
    mcp_tool=WRITE, mcp_action="send",
)


def stop(data: s.LaneSelectorIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    ack = services.lane_stop(lane=lane, surface=ctx.surface)
    lane.refresh_from_db()
    return {**lane_identity(lane), "accepted": True, **ack}


define_op(
    id="stop", summary="interrupt the active turn of a lane (cancel only)",
    intent="write", idempotent=True, input=s.LaneSelectorIn, output=s.ActionAckOut,
    handler=stop, cli="stop", positionals=("lane",), http=("POST", "/lanes/{lane}/stop"),
    mcp_tool=WRITE, mcp_action="stop",
)


def roster(data: s.ListIn, ctx: OpContext) -> dict[str, Any]:
    lanes = Lane.objects.visible(include_archived=data.include_archived)
    return {"lanes": [lane_list_item(lane) for lane in lanes]}


define_op(
    id="roster", summary="list managed lanes", intent="read", idempotent=True,
    input=s.ListIn, output=s.ListOut, handler=roster, cli="list",
    http=("GET", "/lanes"), mcp_tool=READ, mcp_action="roster",
)


def show(data: s.GetIn, ctx: OpContext) -> dict[str, Any]:
    lane = resolve_lane(data.lane)
    counts = {status: 0 for status in QueuedMessage.Status.values}
    for status in lane.queue.values_list("status", flat=True):
        counts[status] += 1
    out: dict[str, Any] = {**lane_list_item(lane), "lane": lane.thread_id, "managed": True,
                           "queue": counts, "transcript": []}
    if data.include_transcript:
        from lanes.transcript import transcript_items

        out["transcript"] = transcript_items(lane=lane, limit=data.max_items)
    return out


define_op(
    id="show", summary="show one lane (latest turn, queue, optional transcript)",
    intent="read", idempotent=True, input=s.GetIn, output=s.GetOut, handler=show,
    cli="get", positionals=("lane",), http=("GET", "/lanes/{lane}"),
    mcp_tool=READ, mcp_action="show",
)
