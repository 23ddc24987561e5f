"""Worktrees dispatch made: `workspace list|clean`."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes.models import Lane
from lanes.ops.schemas import DESTROY, READ
from workspaces.models import Worktree
from workspaces.services.worktrees import worktrees_clean


class WorktreeOut(BaseModel):
    lane: str | None
    handle: str | None
    lane_status: str | None
    path: str
    branch: str
    base: str
    head: str
    source_repo: str
    exists: bool
    created_at: str
    removed_at: str | None


def worktree_view(tree: Worktree) -> dict[str, Any]:
    lane = tree.lane
    return {
        "lane": lane.ref if lane else None,
        "handle": lane.handle if lane else None,
        "lane_status": lane.status if lane else None,
        "path": tree.path,
        "branch": tree.branch,
        "base": tree.base,
        "head": tree.head,
        "source_repo": tree.source_repo,
        "exists": os.path.isdir(tree.path),
        "created_at": tree.created_at.isoformat(),
        "removed_at": tree.removed_at.isoformat() if tree.removed_at else None,
    }


class ListIn(OpInput):
    include_removed: bool = Field(False, description="also list removed worktrees")


class ListOut(OpOutput):
    worktrees: list[WorktreeOut]


@define_op(
    id="workspace_list",
    summary="list the git worktrees dispatch created for lanes",
    intent="read",
    idempotent=True,
    input=ListIn,
    output=ListOut,
    cli="workspace list",
    http=("GET", "/workspaces"),
    mcp_tool=READ,
    mcp_action="workspace_list",
)
def workspace_list(data: ListIn, origin: Origin) -> dict[str, Any]:
    trees = Worktree.objects.select_related("lane")
    if not data.include_removed:
        trees = trees.filter(removed_at__isnull=True)
    return {"worktrees": [worktree_view(t) for t in trees]}


class CleanIn(OpInput):
    keep_branches: bool = Field(
        False, description="keep the dispatch/<lane> branches (default: delete them)"
    )


class CleanOut(OpOutput):
    removed: list[WorktreeOut]
    failed: list[dict[str, str]]


@define_op(
    id="workspace_clean",
    summary="remove the worktrees of archived lanes (and their dispatch branches)",
    intent="destroy",
    idempotent=True,
    input=CleanIn,
    output=CleanOut,
    cli="workspace clean",
    http=("POST", "/workspaces/clean"),
    mcp_tool=DESTROY,
    mcp_action="workspace_clean",
)
def workspace_clean(data: CleanIn, origin: Origin) -> dict[str, Any]:
    removed, failed = worktrees_clean(
        delete_branches=not data.keep_branches,
        statuses=[Lane.Status.ARCHIVED],
        origin=origin,
    )
    return {"removed": [worktree_view(t) for t in removed], "failed": failed}
