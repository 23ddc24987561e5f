"""`dispatch schema` and `dispatch completion` from the snapshot's docs.

The same answers as dispatchsite.surfaces.commands.tools gives in process
(tests/surfaces/test_thin_parity.py compares them), read from the docs part
of the snapshot, which the client keeps in run/cli-snapshot-docs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dispatchsite.core.errors import ValidationError
from dispatchsite.surfaces.completion import completion_script

DOCS_FILE = "cli-snapshot-docs.json"


def read_docs(run: Path, digest: str) -> dict[str, Any] | None:
    """The docs of the snapshot named `digest`, or None (fetch again)."""
    try:
        docs = json.loads((run / DOCS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return docs if isinstance(docs, dict) and docs.get("hash") == digest else None


def schema(snapshot: dict[str, Any], docs: dict[str, Any], args: Any) -> Any:
    """As tools.schema / find_op_for, on the snapshot's ops."""
    words = [w for w in args.command_words if w != "--json"]
    spelling = " ".join(" ".join(words).split())
    if not spelling:
        raise ValidationError("name a command", hint="e.g. `dispatch schema send`")
    ops = snapshot["ops"]
    by_cli = {op["cli"]: op for op in ops.values()}
    op = by_cli.get(spelling) or ops.get(spelling)
    if op is None:
        known = sorted(by_cli)
        raise ValidationError(
            f"unknown command {spelling!r}",
            hint="known: " + ", ".join(known),
            data={"commands": known},
        )
    schemas = docs["schemas"][op["id"]]
    return {
        "command": op["cli"],
        "op": op["id"],
        "input": schemas["input"],
        "output": schemas["output"],
    }


def completion(docs: dict[str, Any], args: argparse.Namespace) -> None:
    sys.stdout.write(completion_script(args.shell, docs["completion"]))
    sys.stdout.flush()
