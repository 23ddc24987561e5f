"""What git says about a lane's working folder: repo, branch, head, changes.

Read-only and bounded (one second a git call, at most 50 changed files
listed), since `history` asks for every lane it shows; lanes reach it
through `lanes.signals.worktree_facts_requested`.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

WORKTREE_FILES_MAX = 50
GIT_TIMEOUT_SECONDS = 1.0
CODEX_WORKTREE_MARKERS = ("/.codex/worktrees/", "/.config/codex/worktrees/")


def git(cwd: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", cwd, *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def worktree_facts(cwd: str) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "detected": False,
        "path": cwd or None,
        "repo": None,
        "branch": None,
        "head": None,
        "dirty": None,
        "changed_files_count": 0,
        "changed_files": [],
        "is_codex_worktree": any(m in (cwd or "") for m in CODEX_WORKTREE_MARKERS),
    }
    if not cwd or not os.path.isdir(cwd):
        return facts
    top = git(
        cwd, "rev-parse", "--show-toplevel", "--git-common-dir", "--short", "HEAD"
    )
    if top is None:
        top = git(cwd, "rev-parse", "--show-toplevel", "--git-common-dir")
        if top is None:
            return facts
    lines = top.splitlines()
    common = lines[1] if len(lines) > 1 else ""
    if common and not os.path.isabs(common):
        common = os.path.normpath(os.path.join(cwd, common))
    facts.update(
        detected=True,
        path=lines[0],
        repo=os.path.dirname(common) if common.endswith(".git") else lines[0],
        head=lines[2] if len(lines) > 2 else None,
    )
    status = git(cwd, "status", "--porcelain=v1", "-uno", "--branch")
    if status is not None:
        rows = status.splitlines()
        if rows and rows[0].startswith("## "):
            branch = rows.pop(0)[3:].split("...")[0]
            facts["branch"] = (
                None if branch.startswith(("HEAD", "No commits")) else branch
            )
        changed = [row[3:] for row in rows if len(row) > 3]
        facts.update(
            dirty=bool(changed),
            changed_files_count=len(changed),
            changed_files=changed[:WORKTREE_FILES_MAX],
        )
    return facts


def worktrees(cwds: set[str]) -> dict[str, dict[str, Any]]:
    cwds = {c for c in cwds if c}
    if not cwds:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(cwds))) as pool:
        return dict(zip(cwds, pool.map(worktree_facts, cwds), strict=True))


def worktree_facts_receiver(
    sender: Any, cwds: set[str], **kwargs: Any
) -> dict[str, dict[str, Any]]:
    return worktrees(cwds)
