"""What a lane shows about its launch, added to `get` and `history` by signal."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from lanes.models import Lane
from workspaces.checks import lane_output_checks
from workspaces.models import LaneLaunch, Packet, Workspace, Worktree

M = TypeVar("M", bound=Model)


def one(rows: QuerySet[M]) -> M | None:
    """The row of a query on a unique key, or None."""
    return next(iter(rows.order_by()[:1]), None)


def packet_summary(packet: Packet | None) -> dict[str, Any] | None:
    if packet is None:
        return None
    return {
        "name": packet.name or None,
        "version": packet.version if packet.name else None,
        "source_dir": packet.source_dir or None,
        "unknown_files": list(packet.unknown_files or []),
        "files": [
            {"slot": f.slot, "path": f.path, "bytes": f.bytes, "sha256": f.sha256}
            for f in packet.files.order_by("path")
        ],
    }


def launch_detail(lane: Lane) -> dict[str, Any]:
    # One-to-one rows: fetched by plain filters, without the ORDER BY that
    # .first() would build (`get` runs this on every call).
    launch = one(LaneLaunch.objects.filter(lane=lane).select_related("packet"))
    if launch is None:
        return {}
    workspace = one(Workspace.objects.filter(lane=lane))
    worktree = one(Worktree.objects.filter(lane=lane))
    return {
        "launch": {
            "packet": packet_summary(launch.packet),
            "sources": launch.sources,
            "settings": launch.settings,
            "output_schema_present": launch.output_schema is not None,
            "staged": launch.staged,
            "workspace": {
                "mode": workspace.mode,
                "state": workspace.state,
                "environment_file": workspace.environment_file or None,
                "setup": workspace.setup or None,
            }
            if workspace
            else None,
            "worktree": {
                "path": worktree.path,
                "branch": worktree.branch,
                "base": worktree.base,
                "head": worktree.head,
                "source_repo": worktree.source_repo,
                "removed_at": worktree.removed_at.isoformat()
                if worktree.removed_at
                else None,
            }
            if worktree
            else None,
        },
        "output_checks": lane_output_checks(lane.pk),
    }


def lane_detail_receiver(sender: Any, lane: Lane, **kwargs: Any) -> dict[str, Any]:
    return launch_detail(lane)
