"""`--stage` / `--inline`: copy the resolved launch files into the lane's cwd.

Written to `<cwd>/.agents/sessions/<ref>/` by building a sibling
`.staging-<ref>` folder and renaming it, so a session folder is either
complete or absent; an existing one is never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from dispatchsite.core.errors import StagingError, ValidationError
from workspaces.packets import LoadedFile, sha256_text

PARTS = (
    "config",
    "goal",
    "prompt",
    "output_schema",
    "base",
    "developer",
    "hooks",
    "codex_config",
)
PART_FILES = {
    "config": "dispatch.toml",
    "goal": "goal.md",
    "prompt": "prompt.md",
    "output_schema": "output.schema.json",
    "base": "base.md",
    "developer": "developer.md",
}
SLOT_OF_PART = {"codex_config": "codex"}
SESSIONS = Path(".agents") / "sessions"


def _names(value: str, flag: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS and n != "all"]
    if unknown:
        raise ValidationError(
            f"{flag}: unknown part(s) {', '.join(unknown)}",
            hint=f"parts: all, {', '.join(PARTS)}",
        )
    return names


def stage_parts(
    *, stage: str | None, inline: str | None, available: set[str]
) -> list[str]:
    """The parts to stage, checked against what this launch has."""
    if not stage:
        if inline:
            raise ValidationError("--inline needs --stage", hint="add --stage all")
        return []
    names = _names(stage, "--stage")
    if "all" in names and len(names) > 1:
        raise ValidationError(
            "--stage all cannot be combined with part names",
            hint="pass --stage all, or list the parts",
        )
    if "all" in names:
        chosen = [p for p in PARTS if p in available]
    else:
        missing = [n for n in names if n not in available]
        if missing:
            raise ValidationError(
                f"--stage: this launch has no {', '.join(missing)} to stage",
                hint=f"available: {', '.join(sorted(available)) or 'nothing'}",
            )
        chosen = names
    removed = set(_names(inline, "--inline")) if inline else set()
    return [p for p in chosen if p not in removed]


def staged_files(
    parts: list[str], files: dict[str, list[LoadedFile]]
) -> list[LoadedFile]:
    out: list[LoadedFile] = []
    for part in parts:
        for loaded in files.get(SLOT_OF_PART.get(part, part), []):
            path = PART_FILES.get(part, loaded.path)
            out.append(LoadedFile(part, path, loaded.text))
    return out


def stage_write(
    *,
    cwd: str,
    ref: str,
    thread_id: str,
    parts: list[str],
    files: list[LoadedFile],
    source_packet: str | None,
) -> dict[str, Any]:
    """Write the session folder atomically; StagingError (exit 9) on any failure."""
    root = Path(cwd).resolve()
    sessions = root / SESSIONS
    target = sessions / ref
    building = sessions / f".staging-{ref}"
    try:
        sessions.mkdir(parents=True, exist_ok=True)
        if not sessions.resolve().is_relative_to(root):
            raise StagingError(
                f"staging folder {sessions} escapes the lane cwd {root}",
                hint="remove the symlink in .agents/",
            )
        if os.path.lexists(target):
            raise StagingError(
                f"staging folder {target} already exists; it is never overwritten",
                hint="move or remove it, then launch again",
            )
        shutil.rmtree(building, ignore_errors=True)
        (building / "packet").mkdir(parents=True)
        (building / "scratch").mkdir()
        rows = []
        for loaded in files:
            path = building / "packet" / loaded.path
            if not path.resolve().is_relative_to(building.resolve()):
                raise StagingError(
                    f"staged file {loaded.path} escapes {target}",
                    hint="use relative packet paths",
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(loaded.text, encoding="utf-8")
            rows.append(
                {
                    "part": loaded.slot,
                    "path": str(target / "packet" / loaded.path),
                    "bytes": loaded.bytes,
                    "sha256": sha256_text(loaded.text),
                }
            )
        state = {
            "lane_id": thread_id,
            "ref": ref,
            "source_packet": source_packet,
            "staged_path": str(target),
            "phase": "staged",
            "launch_state": "pending_turn",
            "files": rows,
        }
        (building / "state.json").write_text(
            json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        os.replace(building, target)
    except StagingError:
        shutil.rmtree(building, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise StagingError(
            f"staging into {target} failed: {exc.strerror or exc}",
            hint="check that the lane cwd is writable",
        ) from None
    return {"parts": parts, "session_dir": str(target), "files": rows}
