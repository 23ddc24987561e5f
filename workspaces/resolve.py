"""Resolving a launch: settings, input slots and their sources, with no side effects.

`launch_resolve` is pure apart from reading files and asking git; `new` and
its dry run both call it, so a dry run shows exactly what `new` would use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from dispatchsite.core.errors import ValidationError
from lanes.ops.schemas import Sandbox
from lanes.services.validation import clean_name
from workspaces.environment import WorkspacePlan, repo_root_of, workspace_plan
from workspaces.models import Packet
from workspaces.packets import (
    SETTING_KEYS,
    LoadedFile,
    PacketContent,
    canonical_json,
    packet_files_from_rows,
    packet_read_dir,
    parse_packet_config,
    parse_schema,
    read_text,
    sha256_text,
)
from workspaces.repo_config import (
    RepoConfig,
    layered_settings,
    load_global_config,
    load_repo_config,
)
from workspaces.staging import stage_parts
from workspaces.worktrees import WorktreePlan, worktree_plan

# slot -> (inline field, file field, flag spellings for messages)
SLOTS = {
    "goal": ("goal", "goal_file", "--goal", "--goal-file"),
    "prompt": ("text", "input_file", "--text", "--input-file"),
    "output_schema": (
        "output_schema",
        "output_schema_file",
        "--output-schema",
        "--output-schema-file",
    ),
    "base": ("base_instructions", "base_file", "--base-instructions", "--base-file"),
    "developer": (
        "developer_instructions",
        "developer_file",
        "--developer-instructions",
        "--developer-file",
    ),
}
STDIN = "-"
TEMPLATE_VAR = re.compile(r"\$\{([^}]*)\}")
TEMPLATE_VARS = {"DISPATCH.CWD.REPO", "DISPATCH.CWD.BASENAME", "DISPATCH.PRESET"}


@dataclass
class LaunchPlan:
    name: str
    title: str
    cwd: Path
    settings: dict[str, Any]
    texts: dict[str, str] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    packet: PacketContent | None = None
    saved_packet: Packet | None = None
    stage: list[str] = field(default_factory=list)
    workspace: WorkspacePlan | None = None
    worktree: WorktreePlan | None = None
    send: bool = True

    @property
    def effective_cwd(self) -> str:
        if self.worktree is not None:
            return self.worktree.effective_cwd
        if self.workspace is not None:
            return self.workspace.effective_cwd
        return str(self.cwd)

    @property
    def goal(self) -> str | None:
        return self.texts.get("goal")

    @property
    def prompt(self) -> str | None:
        return self.texts.get("prompt")

    def packet_view(self) -> dict[str, Any] | None:
        if self.packet is None:
            return None
        return {
            "name": self.packet.name or None,
            "version": self.packet.version,
            "source_dir": self.packet.source_dir or None,
            "files": [
                {"slot": f.slot, "path": f.path, "bytes": f.bytes, "sha256": f.sha256}
                for f in self.packet.files
            ],
        }

    def slot_files(self) -> dict[str, list[LoadedFile]]:
        """The resolved bytes per slot, as staging writes them."""
        files: dict[str, list[LoadedFile]] = {
            slot: [LoadedFile(slot, slot, text)] for slot, text in self.texts.items()
        }
        if self.packet is not None:
            for slot in ("config", "hooks", "codex"):
                found = [f for f in self.packet.files if f.slot == slot]
                if found:
                    files[slot] = found
        return files


def source(slot: str, origin: str, path: str | None, text: str) -> dict[str, Any]:
    return {
        "slot": slot,
        "origin": origin,
        "path": path,
        "bytes": len(text.encode("utf-8")),
        "sha256": sha256_text(text),
    }


def resolve_path(value: str, cwd: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else cwd / path


def load_packet(value: str, cwd: Path) -> tuple[PacketContent, Packet | None]:
    """`--packet DIR|NAME[@vN]`: a folder wins over a saved name."""
    path = resolve_path(value, cwd)
    if path.is_dir() or "/" in value or value.startswith("."):
        return packet_read_dir(str(path)), None
    row = Packet.objects.saved(value)
    if row is None:
        raise ValidationError(
            f"packet {value}: not a directory and no saved packet has that name",
            hint="pass a packet folder, or save one: `dispatch packet save NAME DIR`",
        )
    return packet_files_from_rows(row), row


def _stdin_text(data: Any, flag: str) -> str:
    if data.stdin is None:
        raise ValidationError(
            f"{flag} -: stdin can only be read by the CLI",
            hint="send the content itself (e.g. text or goal) instead of '-'",
        )
    return str(data.stdin)


def resolve_slots(
    plan: LaunchPlan, data: Any, layered: dict[str, Any], config: RepoConfig
) -> None:
    """Each slot from exactly one layer: inline > file > packet > repo config."""
    stdin_flags = [
        spell
        for _inline, file_field, _i, spell in SLOTS.values()
        if getattr(data, file_field) == STDIN
    ]
    if len(stdin_flags) > 1:
        raise ValidationError(
            f"{' and '.join(stdin_flags)} both read stdin; only one may",
            hint="pass the other one as a file",
        )
    for slot, (inline_field, file_field, inline_flag, file_flag) in SLOTS.items():
        inline = getattr(data, inline_field)
        file_value = getattr(data, file_field)
        if inline is not None and file_value is not None:
            raise ValidationError(
                f"{inline_flag} and {file_flag} both set the {slot}",
                hint=f"pass only one of {inline_flag} and {file_flag}",
            )
        found: tuple[str, str | None, str] | None = None
        if inline is not None:
            found = ("inline", None, inline)
        elif file_value == STDIN:
            found = ("stdin", None, _stdin_text(data, file_flag))
        elif file_value is not None:
            file_path = resolve_path(file_value, plan.cwd)
            found = ("file", str(file_path), read_text(file_path, file_flag))
        elif plan.packet is not None and (packed := plan.packet.slot_file(slot)):
            where = f"{plan.packet.source_dir or plan.packet.name}/{packed.path}"
            found = ("packet", where, packed.text)
        elif slot in ("base", "developer"):
            found = _config_slot(slot, layered, config)
        if found is None:
            continue
        origin, path, text = found
        if slot == "output_schema":
            plan.output_schema = parse_schema(text, path or inline_flag)
            entry = source(slot, origin, path, text)
            entry["sha256"] = sha256_text(canonical_json(plan.output_schema))
            plan.sources.append(entry)
            plan.texts[slot] = text
            continue
        if slot == "goal" and not text.strip():
            raise ValidationError(
                f"the goal from {path or inline_flag} is empty",
                hint="pass an objective",
            )
        plan.texts[slot] = text
        plan.sources.append(source(slot, origin, path, text))


def _config_slot(
    slot: str, layered: dict[str, Any], config: RepoConfig
) -> tuple[str, str | None, str] | None:
    inline = layered.get(f"{slot}_instructions")
    if isinstance(inline, str):
        return "repo_config", str(config.path) if config.path else None, inline
    path = layered.get(f"{slot}_file")
    if isinstance(path, str):
        return "repo_config", path, read_text(Path(path), f"{slot}_file")
    return None


def render_prefix(template: str, *, cwd: Path, presets: list[str]) -> str:
    root = repo_root_of(cwd)
    values = {
        "DISPATCH.CWD.REPO": (root or cwd).name,
        "DISPATCH.CWD.BASENAME": cwd.name,
        "DISPATCH.PRESET": presets[-1] if presets else "",
    }
    unknown = sorted(set(TEMPLATE_VAR.findall(template)) - TEMPLATE_VARS)
    if unknown:
        raise ValidationError(
            f"prefix {template!r}: unknown variable(s) {', '.join(unknown)}",
            hint=f"known: {', '.join('${' + v + '}' for v in sorted(TEMPLATE_VARS))}",
        )
    return TEMPLATE_VAR.sub(lambda m: values[m.group(1)], template)


def check_settings(settings: dict[str, Any]) -> None:
    sandbox = settings.get("sandbox")
    if sandbox is not None and sandbox not in get_args(Sandbox):
        raise ValidationError(
            f"sandbox {sandbox!r} is not one of {', '.join(get_args(Sandbox))}",
            hint="fix the sandbox setting",
        )
    for key in SETTING_KEYS:
        value = settings.get(key)
        want: type = bool if key == "ephemeral" else str
        if value is not None and not isinstance(value, want):
            raise ValidationError(
                f"setting {key} must be a {want.__name__}, not {value!r}",
                hint=f"fix {key} in the config, preset or packet",
            )


def launch_resolve(data: Any) -> LaunchPlan:
    """The whole plan: what `new` would send, where, and from which sources."""
    name = clean_name(data.name)
    cwd = Path(os.path.abspath(data.cwd or os.getcwd()))
    if not cwd.is_dir():
        raise ValidationError(
            f"cwd {cwd}: not a directory", hint="pass an existing --cwd"
        )
    global_config = load_global_config()
    repo = load_repo_config(cwd)
    presets = list(data.preset or [])
    layered = layered_settings(global_config=global_config, repo=repo, presets=presets)
    plan = LaunchPlan(name=name, title=name, cwd=cwd, settings={}, send=data.send)
    if repo.path is not None:
        plan.sources.append(source("config", "repo_config", str(repo.path), repo.text))
    packet_config: dict[str, Any] = {}
    if data.packet:
        plan.packet, plan.saved_packet = load_packet(data.packet, cwd)
        config_file = plan.packet.slot_file("config")
        if config_file is not None:
            where = f"{plan.packet.source_dir or plan.packet.name}/{config_file.path}"
            packet_config = parse_packet_config(config_file.text, where)
            plan.sources.append(source("config", "packet", where, config_file.text))
    flags = {key: getattr(data, key) for key in (*SETTING_KEYS, "prefix")}
    merged = {**layered, **packet_config}
    merged.update({k: v for k, v in flags.items() if v is not None})
    plan.settings = {k: merged.get(k) for k in SETTING_KEYS}
    check_settings(plan.settings)
    resolve_slots(plan, data, layered, repo)
    if plan.goal is not None and plan.settings.get("ephemeral"):
        raise ValidationError(
            "an ephemeral lane cannot have a goal",
            hint="drop the goal or set ephemeral = false",
        )
    prefix = merged.get("prefix")
    if prefix:
        rendered = render_prefix(str(prefix), cwd=cwd, presets=presets)
        plan.title = name if name.startswith(rendered) else f"{rendered} {name}"
    available = set(plan.slot_files())
    available = {("codex_config" if s == "codex" else s) for s in available}
    plan.stage = stage_parts(stage=data.stage, inline=data.inline, available=available)
    worktree_mode = (
        data.worktree or repo.workspace.get("worktree") or merged.get("worktree")
    )
    if worktree_mode not in (None, "none", "create"):
        raise ValidationError(
            f"worktree {worktree_mode!r} must be none or create", hint="fix it"
        )
    plan.workspace = _workspace(data, repo, merged, cwd)
    if worktree_mode == "create":
        plan.worktree = worktree_plan(
            cwd=cwd,
            lane_name=name,
            path=data.worktree_path or repo.workspace.get("worktree_path"),
            branch=data.worktree_branch or repo.workspace.get("worktree_branch"),
            base=data.worktree_base or repo.workspace.get("worktree_base"),
        )
    return plan


def _workspace(
    data: Any, repo: RepoConfig, merged: dict[str, Any], cwd: Path
) -> WorkspacePlan:
    mode = str(
        data.workspace
        or repo.workspace.get("default")
        or merged.get("workspace")
        or "none"
    )
    resolved = mode
    if mode not in ("none", "auto"):
        presets = repo.workspace.get("presets", {})
        preset = presets.get(mode) if isinstance(presets, dict) else None
        if not isinstance(preset, dict):
            raise ValidationError(
                f"unknown workspace preset {mode!r}",
                hint="use none, auto, or a [workspace.presets.<name>] of "
                + (str(repo.path) if repo.path else "the repo config"),
            )
        resolved = str(preset.get("mode", "none"))
        if resolved not in ("none", "auto"):
            raise ValidationError(
                f"workspace preset {mode!r}: mode must be none or auto",
                hint=f"fix {repo.path}",
            )
    return workspace_plan(
        mode=mode, resolved_mode=resolved, cwd=cwd, setup_choice=data.workspace_setup
    )
