"""DISPATCH_HOME/config.toml: local policy that only the operator can grant."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from dispatchsite.core.env import env_bool
from dispatchsite.core.errors import ValidationError

KNOWN_POLICY_KEYS = {"allow_attached_writes", "approvals", "approval_timeout_s"}
# Read by workspaces (launch preflight); listed so this reader accepts them.
WORKSPACE_POLICY_KEYS = {"allow_workspace_setup", "workspace_setup_timeout_seconds"}
APPROVAL_MODES = {"decline", "accept", "hold"}
# A held approval blocks its turn; an hour is long enough for a person to
# notice, short enough that a forgotten one does not hold a lane for days.
DEFAULT_APPROVAL_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Policy:
    allow_attached_writes: bool = False
    # What the worker answers when Codex asks for an approval; "decline"
    # keeps turns moving safely, "hold" leaves the turn waiting for
    # `dispatch request respond` (lanes may override it).
    approvals: str = "decline"
    # A held approval nobody answered within this many seconds is declined.
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S


def config_path() -> Path:
    return Path(settings.DISPATCH_CONFIG_FILE)


# Long-lived processes (web, worker) ask on every request: re-parse only when
# the file, its path (tests switch DISPATCH_HOME) or the override changes.
_policy_cache: dict[tuple[object, ...], Policy] = {}


def load_policy(path: Path | None = None) -> Policy:
    """Read [policy] from config.toml; a broken file is a validation error."""
    path = path or config_path()
    try:
        stat = path.stat()
        version: tuple[int, int] = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (-1, -1)
    key = (path, *version, os.environ.get("DISPATCH_ALLOW_ATTACHED_WRITES"))
    if key not in _policy_cache:
        policy = read_policy(path)
        _policy_cache.clear()
        _policy_cache[key] = policy
    return _policy_cache[key]


def read_policy(path: Path) -> Policy:
    data: dict = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(
                f"{path} is not valid TOML: {exc}",
                hint=f"fix or remove {path}",
            ) from None
    policy = data.get("policy", {})
    if not isinstance(policy, dict):
        raise ValidationError(f"{path}: [policy] must be a table", hint=f"fix {path}")
    unknown = set(policy) - KNOWN_POLICY_KEYS - WORKSPACE_POLICY_KEYS
    if unknown:
        raise ValidationError(
            f"{path}: unknown [policy] keys {sorted(unknown)}",
            hint=f"known keys: {sorted(KNOWN_POLICY_KEYS)}",
        )
    allow = policy.get("allow_attached_writes", False)
    if not isinstance(allow, bool):
        raise ValidationError(
            f"{path}: policy.allow_attached_writes must be true or false",
            hint=f"fix {path}",
        )
    approvals = policy.get("approvals", "decline")
    if approvals not in APPROVAL_MODES:
        raise ValidationError(
            f"{path}: policy.approvals must be one of {sorted(APPROVAL_MODES)}",
            hint=f"fix {path}",
        )
    timeout = policy.get("approval_timeout_s", DEFAULT_APPROVAL_TIMEOUT_S)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not timeout > 0
    ):
        raise ValidationError(
            f"{path}: policy.approval_timeout_s must be a positive number of seconds",
            hint=f"fix {path}",
        )
    allow = env_bool("DISPATCH_ALLOW_ATTACHED_WRITES", allow)
    return Policy(
        allow_attached_writes=allow,
        approvals=approvals,
        approval_timeout_s=float(timeout),
    )
