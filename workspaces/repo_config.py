"""Launch defaults and presets: repo `.dispatch/config.toml` and the global config.

Precedence, low to high: global `[defaults]` < repo `[defaults]` < presets
left to right < packet `dispatch.toml` < command-line flags. Unknown keys are
rejected by name, so a typo never silently does nothing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatchsite.core.config import config_path
from dispatchsite.core.errors import ValidationError
from workspaces.packets import SAFE_CONFIG_KEYS, read_text

# Keys a [defaults] or [presets.<name>] table may hold: the packet subset plus
# instructions, which only trusted config may point at files for.
LAYER_KEYS = SAFE_CONFIG_KEYS | {
    "base_file",
    "developer_file",
    "base_instructions",
    "developer_instructions",
    "workspace",
    "worktree",
}
INSTRUCTION_KEYS = {
    "base_file",
    "developer_file",
    "base_instructions",
    "developer_instructions",
}
WORKSPACE_KEYS = {
    "default",
    "worktree",
    "worktree_branch",
    "worktree_base",
    "worktree_path",
    "presets",
}
TOP_KEYS = {"defaults", "presets", "workspace"}
# The global file also holds operator policy, read by dispatchsite.core.config.
GLOBAL_TOP_KEYS = TOP_KEYS | {"policy"}
CONFIG_DIR = ".dispatch"


@dataclass
class RepoConfig:
    path: Path | None = None
    root: Path | None = None  # the folder holding .dispatch/
    text: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)


def find_repo_config(cwd: Path) -> Path | None:
    for folder in (cwd, *cwd.parents):
        candidate = folder / CONFIG_DIR / "config.toml"
        if candidate.is_file():
            return candidate
    return None


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{where} must be a table", hint="fix the config file")
    return value


def _layer(value: Any, where: str, base: Path) -> dict[str, Any]:
    table = dict(_table(value, where))
    # [defaults.instructions] is flattened into the layer.
    instructions = table.pop("instructions", None)
    if instructions is not None:
        nested = _table(instructions, f"{where}.instructions")
        unknown = sorted(set(nested) - INSTRUCTION_KEYS)
        if unknown:
            raise ValidationError(
                f"{where}.instructions: unknown key(s) {', '.join(unknown)}",
                hint=f"known keys: {', '.join(sorted(INSTRUCTION_KEYS))}",
            )
        table.update(nested)
    unknown = sorted(set(table) - LAYER_KEYS)
    if unknown:
        raise ValidationError(
            f"{where}: unknown key(s) {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(LAYER_KEYS))}",
        )
    for key in ("base_file", "developer_file"):
        if key in table:
            # Relative paths resolve from the folder holding .dispatch/.
            table[key] = str((base / str(table[key])).resolve())
    return table


def parse_config(path: Path, root: Path, *, top_keys: set[str]) -> RepoConfig:
    text = read_text(path, "config file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            f"{path}: not valid TOML ({exc})", hint=f"fix {path}"
        ) from None
    unknown = sorted(set(data) - top_keys)
    if unknown:
        raise ValidationError(
            f"{path}: unknown table(s) {', '.join(unknown)}",
            hint=f"known tables: {', '.join(sorted(top_keys))}",
        )
    config = RepoConfig(path=path, root=root, text=text)
    config.defaults = _layer(data.get("defaults", {}), f"{path}: [defaults]", root)
    for name, preset in _table(data.get("presets", {}), f"{path}: [presets]").items():
        config.presets[name] = _layer(preset, f"{path}: [presets.{name}]", root)
    workspace = dict(_table(data.get("workspace", {}), f"{path}: [workspace]"))
    unknown = sorted(set(workspace) - WORKSPACE_KEYS)
    if unknown:
        raise ValidationError(
            f"{path}: [workspace] unknown key(s) {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(WORKSPACE_KEYS))}",
        )
    if "worktree_path" in workspace:
        workspace["worktree_path"] = str((root / workspace["worktree_path"]).resolve())
    config.workspace = workspace
    return config


def load_repo_config(cwd: Path) -> RepoConfig:
    path = find_repo_config(cwd)
    if path is None:
        return RepoConfig()
    return parse_config(path, path.parent.parent, top_keys=TOP_KEYS)


def load_global_config() -> RepoConfig:
    path = config_path()
    if not path.is_file():
        return RepoConfig()
    return parse_config(path, path.parent, top_keys=GLOBAL_TOP_KEYS)


def layered_settings(
    *, global_config: RepoConfig, repo: RepoConfig, presets: list[str]
) -> dict[str, Any]:
    """Defaults, then each preset in turn (a repo preset shadows a global one)."""
    merged = {**global_config.defaults, **repo.defaults}
    for name in presets:
        preset = repo.presets.get(name, global_config.presets.get(name))
        if preset is None:
            known = sorted(set(repo.presets) | set(global_config.presets))
            raise ValidationError(
                f"unknown preset {name!r}"
                + (f" (looked in {repo.path})" if repo.path else ""),
                hint=f"known presets: {', '.join(known) or 'none'}",
            )
        merged.update(preset)
    return merged
