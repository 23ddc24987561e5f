"""Carrying out a launch: worktree and setup first, records once the lane exists.

`lanes.services.lane_create` does the thread work; this module prepares the
folder it runs in, records what the lane was launched with (its
`before_first_turn` hook) and undoes the worktree when no lane came of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction

from dispatchsite.core.origin import Origin
from lanes.models import Lane
from lanes.services.audit import audit_failures
from lanes.services.registration import lane_title_free
from workspaces.environment import workspace_setup_run
from workspaces.models import LaneLaunch, Workspace, Worktree
from workspaces.resolve import LaunchPlan
from workspaces.services.packets import packet_record
from workspaces.staging import stage_write, staged_files
from workspaces.worktrees import worktree_create, worktree_remove

# Settings that go on thread/start (camelCase) when chosen.
THREAD_EXTRA = {
    "model_provider": "modelProvider",
    "personality": "personality",
    "service_tier": "serviceTier",
    "ephemeral": "ephemeral",
}


class Launch:
    """One `new` in progress: the plan, and what has been made for it so far."""

    def __init__(self, plan: LaunchPlan, origin: Origin) -> None:
        self.plan = plan
        self.origin = origin
        self.lane: Lane | None = None
        self.staged: dict[str, Any] | None = None

    # -- before the thread ------------------------------------------------

    def prepare(self) -> None:
        """Name check, worktree, setup: everything that can fail before thread/start."""
        lane_title_free(title=self.plan.title)
        worktree = self.plan.worktree
        if worktree is not None:
            worktree_create(worktree)
        workspace = self.plan.workspace
        if workspace is not None and workspace.setup:
            with self.undo_unless_launched():
                workspace_setup_run(workspace, cwd=self.setup_cwd())

    def setup_cwd(self) -> str:
        workspace = self.plan.workspace
        assert workspace is not None
        worktree = self.plan.worktree
        if worktree is None:
            return workspace.effective_cwd
        # The environment's folder, at the same place inside the new worktree.
        relative = workspace.effective_cwd.removeprefix(worktree.source_repo)
        return worktree.path + relative

    @contextmanager
    def undo_unless_launched(self) -> Iterator[None]:
        """A failure before the lane exists removes the worktree it made."""
        try:
            yield
        except BaseException:
            worktree = self.plan.worktree
            if (
                self.lane is None
                and worktree is not None
                and worktree.state == "created"
            ):
                worktree_remove(
                    path=worktree.path,
                    branch=worktree.branch,
                    source_repo=worktree.source_repo,
                    delete_branch=not worktree.branch_exists,
                )
                worktree.state = "planned"
            raise

    # -- once the lane exists ---------------------------------------------

    def thread_extra(self) -> dict[str, Any]:
        settings = self.plan.settings
        return {
            camel: settings[key]
            for key, camel in THREAD_EXTRA.items()
            if settings.get(key) is not None
        }

    def record(self, lane: Lane) -> None:
        """lane_create's hook: rows first, then staging (exit 9 on failure)."""
        self.lane = lane
        plan = self.plan
        with transaction.atomic():
            packet = plan.saved_packet
            if packet is None and plan.packet is not None:
                packet = packet_record(content=plan.packet)
            LaneLaunch.objects.create(
                lane=lane,
                packet=packet,
                sources=plan.sources,
                settings={k: v for k, v in plan.settings.items() if v is not None},
                output_schema=plan.output_schema,
            )
            if plan.workspace is not None and plan.workspace.resolved_mode != "none":
                Workspace.objects.create(
                    lane=lane,
                    mode=plan.workspace.mode,
                    state=plan.workspace.state,
                    repo_root=plan.workspace.repo_root,
                    effective_cwd=plan.effective_cwd,
                    environment_file=plan.workspace.environment_file,
                    environment=plan.workspace.environment,
                    setup=plan.workspace.setup,
                )
            worktree = plan.worktree
            if worktree is not None and worktree.state == "created":
                Worktree.objects.create(
                    lane=lane,
                    path=worktree.path,
                    branch=worktree.branch,
                    base=worktree.base,
                    head=worktree.head,
                    source_repo=worktree.source_repo,
                )
        if plan.stage:
            with audit_failures(op="stage", lane=lane, origin=self.origin):
                self.staged = stage_write(
                    cwd=plan.effective_cwd,
                    ref=lane.ref,
                    thread_id=lane.thread_id,
                    parts=plan.stage,
                    files=staged_files(plan.stage, plan.slot_files()),
                    source_packet=(plan.packet.source_dir or plan.packet.name)
                    if plan.packet
                    else None,
                )
            LaneLaunch.objects.filter(lane=lane).update(staged=self.staged)

    # -- replies -----------------------------------------------------------

    def reply(self) -> dict[str, Any]:
        return {**launch_view(self.plan), "staged": self.staged}


def launch_view(plan: LaunchPlan) -> dict[str, Any]:
    """What both `new` and its dry run report about the resolution."""
    return {
        "sources": plan.sources,
        "settings": plan.settings,
        "packet": plan.packet_view(),
        "unknown_packet_files": plan.packet.unknown_files if plan.packet else [],
        "aux_packet_dirs": plan.packet.aux_dirs if plan.packet else [],
        "output_schema_present": plan.output_schema is not None,
        "effective_cwd": plan.effective_cwd,
        "workspace": plan.workspace.view() if plan.workspace else None,
        "worktree": plan.worktree.view() if plan.worktree else None,
    }


def plan_reply(plan: LaunchPlan) -> dict[str, Any]:
    """`new --dry-run`: the full plan, having changed nothing."""
    return {
        "name": plan.name,
        "title": plan.title,
        "handle": f"@{plan.title}",
        "cwd": str(plan.cwd),
        **launch_view(plan),
        "goal_set": plan.goal is not None,
        "would_send": plan.send and bool(plan.prompt),
        "stage": {"parts": plan.stage},
        "would_send_params": {
            "thread_start": sorted(
                k
                for k, v in {
                    "baseInstructions": plan.texts.get("base"),
                    "developerInstructions": plan.texts.get("developer"),
                }.items()
                if v is not None
            ),
            "turn_start": ["outputSchema"] if plan.output_schema is not None else [],
        },
    }
