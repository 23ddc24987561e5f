"""`--worktree create`: a plain git worktree for the lane (dispatch's, not Codex's).

The preflight runs in full for dry runs too, so a dry run fails exactly where
the real launch would; only `worktree_create` changes anything.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import ValidationError

GIT_TIMEOUT = 30.0


@dataclass
class WorktreePlan:
    mode: str  # none | create
    state: str = "disabled"  # disabled | planned | created
    path: str = ""
    branch: str = ""
    base: str = ""
    base_sha: str = ""
    head: str = ""
    source_repo: str = ""
    subdir: str = ""  # the input cwd relative to the repo root
    branch_exists: bool = False

    @property
    def effective_cwd(self) -> str:
        return str(Path(self.path) / self.subdir) if self.subdir else self.path

    def view(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "state": self.state,
            "path": self.path or None,
            "branch": self.branch or None,
            "base": self.base or None,
            "head": self.head or None,
            "source_repo": self.source_repo or None,
            "created": self.state == "created",
        }


def slug(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "lane"


def git(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValidationError(
            f"git {' '.join(args)} failed in {cwd}: {exc}", hint="is git installed?"
        ) from None


def worktree_root() -> Path:
    override = os.environ.get("DISPATCH_WORKTREE_ROOT")
    return Path(override) if override else Path(settings.DISPATCH_HOME) / "worktrees"


def branch_owner(repo: str, branch: str) -> str | None:
    """The worktree path that has `branch` checked out, if any."""
    listing = git("worktree", "list", "--porcelain", cwd=repo).stdout
    current = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            current = line.removeprefix("worktree ")
        elif line == f"branch refs/heads/{branch}":
            return current
    return None


def worktree_plan(
    *,
    cwd: Path,
    lane_name: str,
    path: str | None,
    branch: str | None,
    base: str | None,
) -> WorktreePlan:
    """Check everything `git worktree add` needs; raise naming what is in the way."""
    top = git("rev-parse", "--show-toplevel", cwd=str(cwd))
    if top.returncode != 0:
        raise ValidationError(
            f"--worktree create: {cwd} is not inside a git repository",
            hint="run from a git checkout, or drop --worktree",
        )
    repo = top.stdout.strip()
    plan = WorktreePlan(mode="create", state="planned", source_repo=repo)
    rel = os.path.relpath(cwd.resolve(), Path(repo).resolve())
    plan.subdir = "" if rel == "." else rel
    plan.branch = branch or f"dispatch/{slug(lane_name)}"
    plan.base = base or "HEAD"
    target = (
        Path(path)
        if path
        else worktree_root() / slug(Path(repo).name) / slug(lane_name)
    )
    plan.path = str(target.absolute())
    if os.path.lexists(plan.path):
        raise ValidationError(
            f"--worktree create: the path {plan.path} already exists",
            hint="pass another --worktree-path, or remove that folder",
        )
    valid = git("check-ref-format", "--branch", plan.branch, cwd=repo)
    if valid.returncode != 0:
        raise ValidationError(
            f"--worktree-branch {plan.branch!r} is not a valid branch name",
            hint="pass another --worktree-branch",
        )
    sha = git("rev-parse", "--verify", "--quiet", f"{plan.base}^{{commit}}", cwd=repo)
    if sha.returncode != 0:
        raise ValidationError(
            f"--worktree-base {plan.base!r} is not a commit in {repo}",
            hint="pass a branch, tag or commit that exists",
        )
    plan.base_sha = sha.stdout.strip()
    if plan.subdir:
        # The lane runs in the same folder of the new worktree when the base
        # commit has it (an untracked folder is not there), else at its root.
        tracked = git("cat-file", "-e", f"{plan.base_sha}:{plan.subdir}", cwd=repo)
        plan.subdir = plan.subdir if tracked.returncode == 0 else ""
    owner = branch_owner(repo, plan.branch)
    if owner is not None:
        raise ValidationError(
            f"--worktree create: branch {plan.branch} is checked out at {owner}",
            hint="pass another --worktree-branch, or remove that worktree",
        )
    exists = git(
        "show-ref", "--verify", "--quiet", f"refs/heads/{plan.branch}", cwd=repo
    )
    plan.branch_exists = exists.returncode == 0
    plan.head = plan.base_sha[:12] if not plan.branch_exists else ""
    return plan


def worktree_create(plan: WorktreePlan) -> None:
    Path(plan.path).parent.mkdir(parents=True, exist_ok=True)
    if plan.branch_exists:
        args = ["worktree", "add", plan.path, plan.branch]
    else:
        args = ["worktree", "add", "-b", plan.branch, plan.path, plan.base_sha]
    done = git(*args, cwd=plan.source_repo)
    if done.returncode != 0:
        raise ValidationError(
            f"git worktree add {plan.path} failed: {done.stderr.strip()[-500:]}",
            hint="check the repository and the path",
        )
    head = git("rev-parse", "--short=12", "HEAD", cwd=plan.path)
    plan.head = head.stdout.strip()
    plan.state = "created"


def worktree_remove(
    *, path: str, branch: str, source_repo: str, delete_branch: bool
) -> str:
    """Remove a worktree (and the branch dispatch made); '' or why it failed."""
    problem = ""
    if os.path.lexists(path):
        done = git("worktree", "remove", "--force", path, cwd=source_repo)
        if done.returncode != 0:
            problem = done.stderr.strip()[-500:]
    git("worktree", "prune", cwd=source_repo)
    if delete_branch and branch:
        git("branch", "-D", branch, cwd=source_repo)
    return problem
