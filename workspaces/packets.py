"""Reading launch packets: a folder, or a saved packet by name.

A packet's files are read once into `PacketContent`; the launch, the dry run,
staging and the saved `Packet` rows all use those same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatchsite.core.errors import ValidationError

# File name -> slot; everything else at the top level is reported as unknown.
SLOT_FILES = {
    "goal.md": "goal",
    "prompt.md": "prompt",
    "output.schema.json": "output_schema",
    "base.md": "base",
    "developer.md": "developer",
    "dispatch.toml": "config",
}
# Folders staged for the lane to read; never executed nor applied.
AUX_DIRS = {"hooks": "hooks", "codex": "codex"}
# The lane settings a launch resolves, in the order plans show them.
SETTING_KEYS = (
    "sandbox",
    "approval_policy",
    "model",
    "model_provider",
    "effort",
    "summary",
    "personality",
    "service_tier",
    "ephemeral",
)
# dispatch.toml keys a packet may set; no cwd: packets stay portable.
SAFE_CONFIG_KEYS = frozenset({*SETTING_KEYS, "prefix"})
MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class LoadedFile:
    slot: str
    path: str  # relative to the packet root, "/"-separated
    text: str

    @property
    def bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)


@dataclass
class PacketContent:
    files: list[LoadedFile] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    source_dir: str = ""
    name: str = ""
    version: int | None = None

    def slot_file(self, slot: str) -> LoadedFile | None:
        return next((f for f in self.files if f.slot == slot), None)

    @property
    def aux_dirs(self) -> list[str]:
        return sorted({f.path.split("/")[0] for f in self.files if f.slot in AUX_DIRS})


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def read_text(path: Path, what: str) -> str:
    """A UTF-8 file's text; anything else is a validation error naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            f"{what} {path}: cannot be read ({exc.strerror or exc})",
            hint="check the path",
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(
            f"{what} {path}: larger than {MAX_FILE_BYTES} bytes",
            hint="keep launch inputs small",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="save the file as UTF-8",
        ) from None


def parse_schema(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})",
            hint="fix the JSON",
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(
            f"{where}: the output schema must be a JSON object, "
            f"not {type(value).__name__}",
            hint='write a JSON Schema object such as {"type": "object"}',
        )
    return value


def parse_packet_config(text: str, where: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            f"{where}: not valid TOML ({exc})", hint="fix the TOML"
        ) from None
    unknown = sorted(set(data) - SAFE_CONFIG_KEYS)
    if unknown:
        raise ValidationError(
            f"{where}: unknown key(s) {', '.join(unknown)}",
            hint=f"a packet may set only {', '.join(sorted(SAFE_CONFIG_KEYS))}",
        )
    return data


def inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def packet_read_dir(directory: str) -> PacketContent:
    """Every file of a packet folder, validated; bad input names the path."""
    root = Path(directory)
    if not root.is_dir():
        raise ValidationError(
            f"packet {directory}: not a directory (or missing)",
            hint="pass a packet folder or the name of a saved packet",
        )
    content = PacketContent(source_dir=str(root.resolve()))
    for entry in sorted(root.iterdir()):
        name = entry.name
        if not inside(root, entry):
            raise ValidationError(
                f"packet {entry}: a symlink that escapes the packet folder",
                hint="copy the file into the packet instead",
            )
        if name in SLOT_FILES and entry.is_file():
            content.files.append(
                LoadedFile(SLOT_FILES[name], name, read_text(entry, "packet file"))
            )
        elif name in AUX_DIRS and entry.is_dir():
            content.files.extend(_read_aux(root, entry, AUX_DIRS[name]))
        else:
            content.unknown_files.append(name + ("/" if entry.is_dir() else ""))
    packet_validate(content)
    return content


def _read_aux(root: Path, folder: Path, slot: str) -> list[LoadedFile]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if not inside(root, path):
                raise ValidationError(
                    f"packet {path}: a symlink that escapes the packet folder",
                    hint="copy the file into the packet instead",
                )
            rel = path.relative_to(root).as_posix()
            files.append(LoadedFile(slot, rel, read_text(path, "packet file")))
    return files


def packet_validate(content: PacketContent) -> None:
    """The checks every packet passes, read from a folder or from the admin."""
    where = content.source_dir or content.name or "packet"
    schema = content.slot_file("output_schema")
    if schema is not None:
        parse_schema(schema.text, f"{where}/{schema.path}")
    config = content.slot_file("config")
    if config is not None:
        parse_packet_config(config.text, f"{where}/{config.path}")
    for loaded in content.files:
        parts = loaded.path.split("/")
        if loaded.path.startswith("/") or ".." in parts:
            raise ValidationError(
                f"{where}: file path {loaded.path!r} escapes the packet",
                hint="use relative paths without '..'",
            )


def packet_files_from_rows(packet: Any) -> PacketContent:
    """A saved Packet row as content (the same shape as a folder read)."""
    content = PacketContent(
        name=packet.name,
        version=packet.version,
        source_dir=packet.source_dir,
        unknown_files=list(packet.unknown_files or []),
    )
    for row in packet.files.order_by("path"):
        content.files.append(LoadedFile(row.slot, row.path, row.text))
    return content
