"""Ops that talk to a lane's running thread: send (in its five modes) and stop."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import INTERNAL, OpInput, define_op
from lanes import services
from lanes.ops.replies import ack
from lanes.ops.schemas import WRITE, ActionAckOut
from lanes.selectors import resolve_lane

SendMode = Literal["send", "steer", "queue", "interject", "context"]


class SendIn(OpInput):
    lane: str = Field(description="ref, full thread id, @handle or title")
    text: str = Field(description="the message")
    mode: SendMode = Field(
        "send",
        description="send|steer|queue|interject|context",
        json_schema_extra={"cli_choice_flags": True},
    )
    intro: bool = Field(
        False, description="add a footer naming the sender lane (CODEX_THREAD_ID)"
    )
    caller_thread_id: str | None = Field(None, json_schema_extra=INTERNAL)


@define_op(
    id="send",
    summary="send, steer, queue, interject or inject context into a lane",
    intent="write",
    idempotent=False,
    input=SendIn,
    output=ActionAckOut,
    cli="send",
    positionals=("lane", "text"),
    http=("POST", "/lanes/{lane}/send"),
    mcp_tool=WRITE,
    mcp_action="send",
)
def send(data: SendIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    result = services.lane_send(
        lane=lane,
        text=data.text,
        mode=data.mode,
        intro=data.intro,
        caller_thread_id=data.caller_thread_id or origin.caller_thread_id,
        origin=origin,
    )
    # lane_queue re-reads the lane after its writes (to decide on waking the
    # worker): a queued send's reply needs no second read.
    return ack(lane, result, refresh=data.mode != "queue")


class StopIn(OpInput):
    lane: str = Field(
        description="ref, full thread id, @handle or title",
        json_schema_extra={"cli_flags": ["--lane"]},
    )


@define_op(
    id="stop",
    summary="interrupt the active turn of a lane (cancel only)",
    intent="write",
    idempotent=True,
    input=StopIn,
    output=ActionAckOut,
    cli="stop",
    positionals=("lane",),
    http=("POST", "/lanes/{lane}/stop"),
    mcp_tool=WRITE,
    mcp_action="stop",
)
def stop(data: StopIn, origin: Origin) -> dict[str, Any]:
    lane = resolve_lane(data.lane, for_write=True)
    return ack(lane, services.lane_stop(lane=lane, origin=origin))
