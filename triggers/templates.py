"""`{{ name }}` placeholders in a trigger's text, filled from the firing.

Substitution only: a placeholder is a dotted path looked up in plain data,
never evaluated, so a webhook body cannot run anything. Missing values render
empty; the rendered text is capped at TEXT_CAP_BYTES.
"""

from __future__ import annotations

import json
import re
from typing import Any

TEXT_CAP_BYTES = 16 * 1024
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*\}\}")


def lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def cap(text: str, limit: int = TEXT_CAP_BYTES) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def render(template: str, context: dict[str, Any]) -> str:
    """`template` with each placeholder replaced by its value in `context`.

    Built piece by piece and stopped at the cap, so a large webhook value
    repeated by many placeholders never builds a huge string first.
    """
    parts: list[str] = []
    size = 0
    position = 0
    for match in PLACEHOLDER.finditer(template):
        for piece in (
            template[position : match.start()],
            cap(as_text(lookup(context, match.group(1)))),
        ):
            parts.append(piece)
            size += len(piece.encode("utf-8"))
        position = match.end()
        if size > TEXT_CAP_BYTES:
            return cap("".join(parts))
    parts.append(template[position:])
    return cap("".join(parts))
