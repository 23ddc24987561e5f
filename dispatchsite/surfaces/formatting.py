"""The CLI for people as well as scripts: output formats and tidy help.

JSON stays the default for every verb (agents and scripts parse it).
`--format table`, or `DISPATCH_FORMAT=table`, prints list-like results
(lanes, requests, queued messages, triggers, ...) as a compact table; any
other result stays JSON, since a table of one nested object reads worse.
`--json` forces JSON, so a script that passes it keeps working in a shell
that sets DISPATCH_FORMAT=table.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

FORMATS = ("json", "table")
CELL_MAX = 48

# The list a verb returns -> the columns worth a glance (dotted = nested).
# Lists not named here show their first scalar fields.
COLUMNS: dict[str, tuple[str, ...]] = {
    "lanes": (
        "ref",
        "handle",
        "status",
        "latest_turn.status",
        "source",
        "host",
        "cwd",
        "last_event_at",
    ),
    "sessions": ("id", "name", "status", "cwd", "updated_at", "preview"),
    "requests": ("id", "lane", "method", "state", "command", "received_at"),
    "messages": ("id", "lane", "status", "text", "error", "created_at"),
    "actions": ("ts", "op", "lane", "outcome", "surface", "actor", "detail"),
    "triggers": ("id", "name", "kind", "lane", "action", "paused", "next_run_at"),
    "firings": ("id", "outcome", "at", "detail"),
    "tokens": ("name", "prefix", "read_only", "expires_at", "revoked_at"),
    "matches": ("lane", "turn_id", "type", "snippet"),
    "goals": ("objective", "status", "tokens_used", "set_by", "created_at"),
    "models": ("id", "display_name", "is_default"),
    "packets": ("name", "version", "created_at"),
    "worktrees": ("lane", "path", "branch", "state"),
    "items": ("turn_id", "type", "text"),
}
SCALAR_COLUMNS = 8
# Headers that would otherwise repeat (a lane's status and its turn's).
HEADERS = {"latest_turn.status": "TURN", "last_event_at": "LAST EVENT"}

# What each command group holds; the subcommands are appended as listed.
GROUP_HELP: dict[str, str] = {
    "goal": "a lane's native Codex goal",
    "lane": "change a lane's thread",
    "queue": "a lane's durable message queue",
    "request": "approval requests held for a person",
    "trigger": "triggers that act on lanes (when -> action -> lane)",
    "packet": "saved launch packets",
    "workspace": "git worktrees dispatch made for lanes",
    "daemon": "the running daemon",
    "journal": "the event journal",
    "registry": "the database",
    "token": "API tokens for REST, MCP and websockets",
    "admin": "logins for the web console (dashboard, admin, live pages)",
}


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="JSON output: the default; overrides DISPATCH_FORMAT",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="json (default) or table: a compact table for list-like results "
        "(default from DISPATCH_FORMAT)",
    )


def output_format(args: argparse.Namespace) -> str:
    if getattr(args, "json", False):
        return "json"
    chosen = getattr(args, "format", None) or os.environ.get("DISPATCH_FORMAT", "")
    return "table" if chosen.strip().lower() == "table" else "json"


# -- tables --------------------------------------------------------------------


def listed(result: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(name, rows) when the result is one list of objects, else None."""
    if not isinstance(result, dict):
        return None
    lists = [
        (key, value)
        for key, value in result.items()
        if isinstance(value, list) and all(isinstance(v, dict) for v in value)
    ]
    named = [(key, rows) for key, rows in lists if key in COLUMNS]
    if len(named) == 1:
        return named[0]
    return lists[0] if len(lists) == 1 and len(result) == 1 else None


def pick(row: dict[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        text = " ".join(str(v) for v in value) if isinstance(value, list) else "…"
    else:
        text = str(value)
    if len(text) >= 19 and text[4:5] == "-" and text[10:11] == "T":
        text = text[:19].replace("T", " ")  # an ISO timestamp, to the second
    text = " ".join(text.split())
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def columns_for(name: str, rows: list[dict[str, Any]]) -> list[str]:
    wanted = COLUMNS.get(name)
    if wanted:
        present = [c for c in wanted if any(pick(r, c) is not None for r in rows)]
        return present or list(wanted[:1])
    first = rows[0] if rows else {}
    scalar = [k for k, v in first.items() if not isinstance(v, list | dict)]
    return scalar[:SCALAR_COLUMNS]


def table_text(result: Any) -> str | None:
    """A list-like result as an aligned text table; None for anything else."""
    found = listed(result)
    if found is None:
        return None
    name, rows = found
    if not rows:
        return f"(no {name})\n"
    columns = columns_for(name, rows)
    header = [HEADERS.get(c, c.split(".")[-1].upper()) for c in columns]
    body = [[cell(pick(row, c)) for c in columns] for row in rows]
    widths = [
        max(len(line[i]) for line in [header, *body]) for i in range(len(columns))
    ]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


# -- help ----------------------------------------------------------------------


# `nodes` are dispatchsite.surfaces.cli.Node (not imported: cli imports this).
def tidy_help(nodes: dict[tuple[str, ...], Any]) -> None:
    """Help that lists what each verb accepts and what each group holds.

    A composed spelling (`list` and `list --unmanaged`) shares one parser:
    flags only the switched op takes are hidden from the verb's help and
    named beside the switch instead.
    """
    for path, node in nodes.items():
        if path and node.children is not None:
            describe_group(nodes, path, node)
        plain = {op.id for op in node.ops if not op.cli_switch}
        switched = [op for op in node.ops if op.cli_switch]
        if not plain or not switched:
            continue
        actions = {action.dest: action for action in node.parser._actions}
        for op in switched:
            only = sorted(
                dest
                for dest, owners in node.dests.items()
                if op.id in owners and not owners & plain and dest in actions
            )
            for dest in only:
                actions[dest].help = argparse.SUPPRESS
            switch = actions.get(f"_switch_{op.id}")
            if switch is not None and only:
                flags = ", ".join(actions[d].option_strings[0] for d in only)
                switch.help = f"{switch.help}; with it: {flags}"


def describe_group(
    nodes: dict[tuple[str, ...], Any], path: tuple[str, ...], node: Any
) -> None:
    assert node.children is not None
    words = ", ".join(node.children.choices)
    lead = GROUP_HELP.get(path[-1])
    text = f"{lead}: {words}" if lead else words
    if node.ops:  # the group is also a verb of its own
        text = f"{node.ops[0].summary}; also {words}"
    node.parser.description = text
    parent = nodes[path[:-1]]
    if parent.children is not None:
        for choice in parent.children._choices_actions:
            if choice.dest == path[-1]:
                choice.help = text
