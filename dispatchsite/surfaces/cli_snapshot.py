"""The CLI's published description: the argparse tree as data.

The daemon serves it (`GET /api/v1/cli-snapshot`) so that `dispatch <verb>`
can parse its arguments without importing Django or pydantic
(dispatchsite.thin). It is the tree `build_parser` makes, serialized action
by action after `tidy_help`, so the thin parser rebuilt from it prints the
same help and errors and yields the same params (tests/surfaces/
test_thin_parity.py). `hash` names the content: the thin client sends it
with each call and the daemon refuses a stale one, so a changed registry is
never parsed with an old snapshot.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
from typing import Any

from dispatchsite.core.registry import Op, load_ops
from dispatchsite.surfaces.cli import Node, build_parser, path_inputs
from dispatchsite.surfaces.cli_env import env_digest

FORMAT = 2
# Action classes the thin parser can rebuild; a node holding another (a
# surface command's custom action) is parsed in process instead.
KINDS = {
    "_StoreAction",
    "_StoreTrueAction",
    "_StoreFalseAction",
    "_StoreConstAction",
    "_AppendAction",
    "_CountAction",
    "BooleanOptionalAction",
    "_HelpAction",
    "_SubParsersAction",
}
TYPES: dict[Any, str | None] = {None: None, int: "int", float: "float", str: "str"}
SCALARS = (str, int, float, bool, type(None))


def plain(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(isinstance(v, SCALARS) for v in value)
    return isinstance(value, SCALARS)


def action_data(action: argparse.Action) -> dict[str, Any] | None:
    """One action as JSON; None if the thin parser could not rebuild it."""
    kind = type(action).__name__
    if kind not in KINDS or action.type not in TYPES:
        return None
    data: dict[str, Any] = {
        "kind": kind,
        "option_strings": list(action.option_strings),
        "dest": action.dest,
        "nargs": action.nargs,
        "const": action.const,
        "default": action.default,
        "type": TYPES[action.type],
        "choices": list(action.choices) if action.choices is not None else None,
        "required": action.required,
        "help": action.help,
        "metavar": action.metavar,
    }
    if kind == "_SubParsersAction":
        assert isinstance(action, argparse._SubParsersAction)
        helps = {a.dest: a.help for a in action._choices_actions}
        data["choices"] = [[word, helps.get(word)] for word in action.choices]
    if not all(plain(data[k]) for k in ("nargs", "const", "default", "metavar")):
        return None
    return data


def parser_data(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A parser's own settings and actions, in order; `thin` False if any
    action is not representable."""
    actions = [action_data(a) for a in parser._actions]
    exclusive = [
        [group.required, [a.dest for a in group._group_actions]]
        for group in parser._mutually_exclusive_groups
    ]
    return {
        "prog": parser.prog,
        "usage": parser.usage,
        "description": parser.description,
        "epilog": parser.epilog,
        "actions": [a for a in actions if a is not None],
        "exclusive": exclusive,
        # Titled argument groups are not rebuilt: such a parser runs in process.
        "thin": all(a is not None for a in actions) and len(parser._action_groups) == 2,
    }


# Fields handlers resolve against the process's cwd or home (`search
# --dir .`, `history --cwd`, `new --cwd`): a call that names one runs in
# process, where that is the caller's.
LOCAL_FIELDS = {"cwd", "dir", "directory", "repo"}
# Ops whose handler takes a missing `cwd` to be the CLI's own directory
# (lanes.services.validation.caller_cwd): the thin client sends its cwd, as
# the daemon's own means nothing to the caller. tests/surfaces/
# test_thin_parity.py checks this against the handlers.
CALLER_CWD_OPS = frozenset({"new", "new_plan"})


def op_data(op: Op) -> dict[str, Any]:
    fields = op.input.model_fields
    files = path_inputs(op)
    return {
        "id": op.id,
        "cli": op.cli,
        "summary": op.summary,
        "switch": op.cli_switch,
        "intent": op.intent,
        "positionals": list(op.positionals),
        "required": [n for n, f in fields.items() if f.is_required()],
        # REST runs the local CLI token's calls as the CLI's (surface "cli",
        # the OS user), so writes are audited the same. But a launch (`new`)
        # may create a worktree, stage files in the caller's tree and run
        # the workspace setup script: in process with the caller's
        # environment and umask, in the daemon with its own (owner-only), so
        # it stays in process. Its dry run only reads.
        "thin": not (op.id in CALLER_CWD_OPS and op.intent != "read"),
        "local_fields": sorted(LOCAL_FIELDS & set(fields)),
        # Path fields made absolute in the caller's cwd (`-`: stdin, sent).
        "files": files,
        "caller_cwd": op.id in CALLER_CWD_OPS,
    }


def node_data(node: Node) -> dict[str, Any]:
    surface = node.parser._defaults.get("_surface_command")
    return {
        **parser_data(node.parser),
        "ops": [op.id for op in node.ops],
        "dests": {name: sorted(owners) for name, owners in node.dests.items()},
        "choice_flags": node.choice_flags,
        "positional_flags": node.positional_flags,
        "switch_commands": {
            dest: {
                "spelling": command.spelling,
                "switch_only": list(command.switch_only),
            }
            for dest, command in node.switch_commands.items()
        },
        "surface_command": surface.spelling if surface is not None else None,
    }


def build_snapshot(version: str) -> dict[str, Any]:
    _root, nodes = build_parser()
    # Imported once build_parser has discovered every command: importing a
    # commands module first would register its commands first, and reorder
    # the help.
    from dispatchsite.surfaces.commands.tools import command_tree

    ops = load_ops().values()
    body = {
        "format": FORMAT,
        "version": version,
        "nodes": {" ".join(path): node_data(node) for path, node in nodes.items()},
        "ops": {op.id: op_data(op) for op in ops},
        "env": env_digest(os.environ),
        # For `dispatch schema` and `dispatch completion`; the client keeps
        # them in a file of their own, as no other verb reads them.
        "docs": {
            "schemas": {
                op.id: {"input": op.input_schema(), "output": op.output_schema()}
                for op in ops
            },
            "completion": command_tree(),
        },
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "hash": hashlib.sha256(text.encode()).hexdigest()[:32]}


@functools.cache
def snapshot_text(version: str) -> tuple[str, str]:
    """(JSON text, hash), built once per process: the registry is fixed at
    start-up."""
    snapshot = build_snapshot(version)
    return json.dumps(snapshot, ensure_ascii=False), snapshot["hash"]
