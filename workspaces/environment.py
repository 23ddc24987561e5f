"""Workspace preflight: find `.codex/environments/environment.toml`, maybe set up.

The setup script runs only when the command line asks (`--workspace-setup
run`) or the operator trusts it (`[policy] allow_workspace_setup = true` in
DISPATCH_HOME/config.toml); never because a packet or a repo says so.
"""

from __future__ import annotations

import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatchsite.core.config import config_path
from dispatchsite.core.errors import ValidationError
from workspaces.packets import read_text

ENVIRONMENT_FILE = Path(".codex/environments/environment.toml")
ENVIRONMENT_KEYS = {"version", "name", "setup", "cleanup"}
DEFAULT_SETUP_TIMEOUT = 120.0
TAIL_CHARS = 4000


@dataclass
class WorkspacePlan:
    mode: str  # none | auto | <preset name>
    resolved_mode: str  # none | auto
    state: str = "disabled"  # disabled | not_found | discovered | setup_completed
    input_cwd: str = ""
    repo_root: str = ""
    effective_cwd: str = ""
    environment_file: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "resolved_mode": self.resolved_mode,
            "state": self.state,
            "input_cwd": self.input_cwd,
            "repo_root": self.repo_root or None,
            "effective_cwd": self.effective_cwd,
            "environment_file": self.environment_file or None,
            "environment": self.environment or None,
            "setup": self.setup or None,
        }


def repo_root_of(cwd: Path) -> Path | None:
    """The nearest ancestor holding `.git` (a folder, or a worktree's file)."""
    for folder in (cwd, *cwd.parents):
        if (folder / ".git").exists():
            return folder
    return None


def setup_policy_trusted() -> tuple[bool, float]:
    """([policy] allow_workspace_setup, its timeout) from the operator's config."""
    path = config_path()
    if not path.is_file():
        return False, DEFAULT_SETUP_TIMEOUT
    try:
        policy = tomllib.loads(read_text(path, "config file")).get("policy", {})
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            f"{path}: not valid TOML ({exc})", hint=f"fix {path}"
        ) from None
    allow = policy.get("allow_workspace_setup", False)
    timeout = policy.get("workspace_setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT)
    if not isinstance(allow, bool):
        raise ValidationError(
            f"{path}: policy.allow_workspace_setup must be true or false",
            hint=f"fix {path}",
        )
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ValidationError(
            f"{path}: policy.workspace_setup_timeout_seconds must be a positive number",
            hint=f"fix {path}",
        )
    return allow, float(timeout)


def _script(env: dict[str, Any], table: str, path: Path) -> str:
    value = env.get(table, {})
    if not isinstance(value, dict):
        raise ValidationError(f"{path}: [{table}] must be a table", hint=f"fix {path}")
    script = value.get("script", "")
    if not isinstance(script, str):
        raise ValidationError(
            f"{path}: {table}.script must be a string", hint=f"fix {path}"
        )
    return script


def workspace_plan(
    *, mode: str, resolved_mode: str, cwd: Path, setup_choice: str
) -> WorkspacePlan:
    """What `--workspace` finds and would run; nothing is executed here."""
    plan = WorkspacePlan(
        mode=mode,
        resolved_mode=resolved_mode,
        input_cwd=str(cwd),
        effective_cwd=str(cwd),
    )
    if resolved_mode == "none":
        return plan
    root = repo_root_of(cwd)
    plan.repo_root = str(root) if root else ""
    candidates = [root] if root else [cwd, *cwd.parents]
    found = next(
        (c / ENVIRONMENT_FILE for c in candidates if (c / ENVIRONMENT_FILE).is_file()),
        None,
    )
    if found is None:
        plan.state = "not_found"
        return plan
    text = read_text(found, "environment file")
    try:
        env = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            f"{found}: not valid TOML ({exc})", hint=f"fix {found}"
        ) from None
    plan.state = "discovered"
    plan.environment_file = str(found)
    env_root = found.parents[2]
    plan.effective_cwd = str(env_root)
    plan.environment = {
        "version": env.get("version"),
        "name": env.get("name"),
        "setup_script": _script(env, "setup", found) or None,
        "cleanup_script": _script(env, "cleanup", found) or None,
        "unknown_keys": sorted(set(env) - ENVIRONMENT_KEYS),
    }
    script = plan.environment["setup_script"]
    if not script:
        policy = "no_script"
    elif setup_choice == "skip":
        policy = "skipped"
    elif setup_choice == "run":
        policy = "explicit"
    elif setup_policy_trusted()[0]:
        policy = "trusted"
    else:
        policy = "not_allowed"
    plan.setup = {
        "policy": policy,
        "ran": False,
        "script": script,
        "cwd": str(env_root),
    }
    return plan


def workspace_setup_run(plan: WorkspacePlan, *, cwd: str) -> None:
    """Run the setup script if the plan allows it; failure stops the launch."""
    if plan.setup.get("policy") not in ("explicit", "trusted"):
        return
    _allowed, timeout = setup_policy_trusted()
    started = time.monotonic()
    plan.setup["cwd"] = cwd
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", plan.setup["script"]],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        plan.setup.update(ran=True, exit_code=None, timed_out=True)
        raise ValidationError(
            f"workspace setup script of {plan.environment_file} timed out after "
            f"{timeout:g} s",
            hint="fix the script, raise policy.workspace_setup_timeout_seconds, "
            "or pass --workspace-setup skip",
            data={"stdout_tail": _tail(exc.stdout), "stderr_tail": _tail(exc.stderr)},
        ) from None
    plan.setup.update(
        ran=True,
        exit_code=done.returncode,
        duration_ms=int((time.monotonic() - started) * 1000),
        stdout_tail=_tail(done.stdout),
        stderr_tail=_tail(done.stderr),
    )
    if done.returncode != 0:
        raise ValidationError(
            f"workspace setup script of {plan.environment_file} failed "
            f"(exit {done.returncode}); no thread was created",
            hint="fix the script or pass --workspace-setup skip",
            data={k: plan.setup[k] for k in ("stdout_tail", "stderr_tail")},
        )
    plan.state = "setup_completed"


def _tail(value: str | bytes | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value[-TAIL_CHARS:]
