"""Removing worktrees of lanes that are done with them."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from dispatchsite.core.origin import Origin
from lanes.services.audit import audit_record
from workspaces.models import Worktree
from workspaces.worktrees import worktree_remove


def worktrees_clean(
    *, delete_branches: bool, statuses: list[str], origin: Origin
) -> tuple[list[Worktree], list[dict[str, str]]]:
    """Remove live worktrees whose lane has one of `statuses` (or no lane left)."""
    trees = Worktree.objects.filter(removed_at__isnull=True).filter(
        Q(lane__status__in=statuses) | Q(lane__isnull=True)
    )
    removed: list[Worktree] = []
    failed: list[dict[str, str]] = []
    for tree in trees.select_related("lane"):
        problem = worktree_remove(
            path=tree.path,
            branch=tree.branch,
            source_repo=tree.source_repo,
            delete_branch=delete_branches,
        )
        if problem:
            failed.append({"path": tree.path, "error": problem})
            continue
        # Claimed by a conditional update: two cleans never both report it.
        claimed = Worktree.objects.filter(pk=tree.pk, removed_at__isnull=True).update(
            removed_at=timezone.now()
        )
        if claimed:
            tree.refresh_from_db()
            removed.append(tree)
            audit_record(
                op="workspace clean",
                lane=tree.lane,
                detail=tree.path,
                origin=origin,
            )
    return removed, failed
