"""The launch op: `dispatch new` creates an owned lane (thread/start).

It lives in `workspaces` because launching is where packets, presets,
workspaces and worktrees are resolved before `lanes` creates the thread.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import INTERNAL, OpInput, OpOutput, define_op
from lanes import services
from lanes.ops.replies import lane_row
from lanes.ops.schemas import (
    APPROVAL_HELP,
    CWD_HELP,
    EFFORT_HELP,
    READ,
    WRITE,
    CwdPath,
    Effort,
    LaneListItemOut,
    LaneName,
    ModelId,
    Sandbox,
)
from lanes.services.validation import ApprovalPolicy, caller_cwd
from workspaces.resolve import launch_resolve
from workspaces.services.launch import Launch, plan_reply

# Path fields the CLI makes absolute against the caller's cwd; '-' = stdin.
PATH: dict[str, Any] = {"cli_path": True}
STDIN_PATH: dict[str, Any] = {"cli_path": True, "cli_stdin": True}
PATH_MAX = 4096
SHORT_MAX = 200
# A packet may be a saved name: made absolute only when such a path exists.
PACKET_PATH: dict[str, Any] = {"cli_path": "if_exists"}


class NewIn(OpInput):
    name: LaneName = Field(description="lane name (its handle is @name)")
    cwd: CwdPath | None = Field(
        None,
        description=CWD_HELP + "; default: the CLI's current directory "
        "(REST and MCP callers must pass it)",
        json_schema_extra=PATH,
    )
    text: str | None = Field(None, description="first message")
    goal: str | None = Field(None, description="native Codex goal objective")
    send: bool = Field(
        True, description="send the first message (--no-send to only register)"
    )
    model: ModelId | None = None
    sandbox: Sandbox | None = None
    approval_policy: ApprovalPolicy | None = Field(None, description=APPROVAL_HELP)
    effort: Effort | None = Field(None, description=EFFORT_HELP)
    approvals: Literal["decline", "accept", "hold"] | None = Field(
        None,
        description="how this lane's approval requests are answered "
        "(default: [policy] approvals); hold waits for `request respond`",
    )
    host: str | None = Field(
        None,
        max_length=100,
        description="host whose worker runs the lane (default: the least "
        "loaded live host)",
    )
    # -- launch inputs (workspaces) --
    preset: list[str] | None = Field(
        None,
        max_length=20,
        description="repo/global config preset(s), applied left to right",
    )
    packet: str | None = Field(
        None,
        max_length=PATH_MAX,
        description="packet folder, or saved packet NAME[@vN]",
        json_schema_extra=PACKET_PATH,
    )
    input_file: str | None = Field(
        None,
        max_length=PATH_MAX,
        description="first message from a file ('-' = stdin)",
        json_schema_extra=STDIN_PATH,
    )
    goal_file: str | None = Field(
        None,
        max_length=PATH_MAX,
        description="goal from a file ('-' = stdin)",
        json_schema_extra=STDIN_PATH,
    )
    output_schema: str | None = Field(
        None, description="output JSON schema (a JSON object), inline"
    )
    output_schema_file: str | None = Field(
        None,
        max_length=PATH_MAX,
        description="output JSON schema file",
        json_schema_extra=PATH,
    )
    base_instructions: str | None = Field(None, description="base instructions")
    base_file: str | None = Field(
        None,
        max_length=PATH_MAX,
        description="base instructions file",
        json_schema_extra=PATH,
    )
    developer_instructions: str | None = Field(
        None, description="developer instructions"
    )
    developer_file: str | None = Field(
        None,
        max_length=PATH_MAX,
        description="developer instructions file",
        json_schema_extra=PATH,
    )
    model_provider: str | None = Field(None, max_length=SHORT_MAX)
    summary: str | None = Field(
        None, max_length=SHORT_MAX, description="reasoning summary mode"
    )
    personality: str | None = Field(None, max_length=SHORT_MAX)
    service_tier: str | None = Field(None, max_length=SHORT_MAX)
    ephemeral: bool | None = Field(None, description="an ephemeral thread (no goals)")
    prefix: str | None = Field(
        None,
        max_length=SHORT_MAX,
        description="name prefix template, e.g. [${DISPATCH.CWD.REPO}]",
    )
    stage: str | None = Field(
        None,
        max_length=SHORT_MAX,
        description="stage parts into .agents/sessions/<ref>/: all or a,b,...",
    )
    inline: str | None = Field(
        None, max_length=SHORT_MAX, description="parts to leave out of --stage"
    )
    workspace: str | None = Field(
        None, max_length=SHORT_MAX, description="none | auto | <workspace preset>"
    )
    workspace_setup: Literal["auto", "skip", "run"] = Field(
        "auto", description="run the environment setup script: auto | skip | run"
    )
    worktree: Literal["none", "create"] | None = Field(
        None, description="create: run the lane in a new git worktree"
    )
    worktree_path: str | None = Field(None, max_length=PATH_MAX, json_schema_extra=PATH)
    worktree_branch: str | None = Field(None, max_length=SHORT_MAX)
    worktree_base: str | None = Field(None, max_length=SHORT_MAX)
    stdin: str | None = Field(None, json_schema_extra=INTERNAL)


class SourceOut(BaseModel):
    slot: str
    origin: Literal["inline", "file", "stdin", "packet", "repo_config"]
    path: str | None
    bytes: int
    sha256: str


class LaunchFacts(BaseModel):
    sources: list[SourceOut] = []
    settings: dict[str, Any] = {}
    packet: dict[str, Any] | None = None
    unknown_packet_files: list[str] = []
    aux_packet_dirs: list[str] = []
    output_schema_present: bool = False
    effective_cwd: str | None = None
    workspace: dict[str, Any] | None = None
    worktree: dict[str, Any] | None = None


class NewOut(LaneListItemOut, LaunchFacts):
    message_accepted: bool
    goal_set: bool
    staged: dict[str, Any] | None = None


@define_op(
    id="new",
    summary="create an owned lane (thread/start), maybe with a goal and first message",
    intent="write",
    idempotent=False,
    input=NewIn,
    output=NewOut,
    cli="new",
    http=("POST", "/lanes"),
    mcp_tool=WRITE,
    mcp_action="new",
)
def new(data: NewIn, origin: Origin) -> dict[str, Any]:
    # Resolution (packet, presets, files, workspace, worktree) comes first and
    # changes nothing; then the worktree and setup; then the thread.
    data.cwd = caller_cwd(data.cwd, origin=origin)  # not the daemon's own
    launch = Launch(launch_resolve(data), origin)
    plan = launch.plan
    launch.prepare()
    with launch.undo_unless_launched():
        result = services.lane_create(
            name=plan.title,
            cwd=os.path.abspath(plan.effective_cwd),
            text=plan.prompt,
            goal=plan.goal,
            send=data.send,
            model=plan.settings["model"],
            sandbox=plan.settings["sandbox"],
            approval_policy=plan.settings["approval_policy"],
            effort=plan.settings["effort"],
            base_instructions=plan.texts.get("base"),
            developer_instructions=plan.texts.get("developer"),
            output_schema=plan.output_schema,
            summary=plan.settings["summary"],
            thread_extra=launch.thread_extra(),
            before_first_turn=launch.record,
            approvals=data.approvals,
            host=data.host,
            origin=origin,
        )
    return {
        **lane_row(result["lane"], {}),
        "message_accepted": result["message_accepted"],
        "goal_set": result["goal_set"],
        **launch.reply(),
    }


class PlanOut(LaunchFacts, OpOutput):
    name: str
    title: str
    handle: str
    cwd: str
    goal_set: bool
    would_send: bool
    stage: dict[str, list[str]]
    would_send_params: dict[str, list[str]]


@define_op(
    id="new_plan",
    summary="resolve `new` (packet, presets, files, workspace, worktree) "
    "and show the plan, changing nothing",
    intent="read",
    idempotent=True,
    input=NewIn,
    output=PlanOut,
    cli="new --dry-run",
    http=("POST", "/lanes/plan"),
    mcp_tool=READ,
    mcp_action="new_plan",
)
def new_plan(data: NewIn, origin: Origin) -> dict[str, Any]:
    data.cwd = caller_cwd(data.cwd, origin=origin)  # not the daemon's own
    return plan_reply(launch_resolve(data))
