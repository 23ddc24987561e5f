"""argparse rebuilt from the CLI snapshot, and the params it yields.

Mirrors dispatchsite.surfaces.cli (build_parser and the checks of
dispatch_args) on data instead of ops, and shares its choice of op and
params (dispatchsite.surfaces.argv), so the two agree on every argv:
tests/surfaces/test_thin_parity.py compares them op by op.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass
from typing import Any

from dispatchsite.surfaces.argv import OpShape, choose_op, command_words, op_params

TYPES: dict[str | None, Any] = {None: None, "int": int, "float": float, "str": str}
KINDS: dict[str, Any] = {
    "_StoreAction": "store",
    "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const",
    "_AppendAction": "append",
    "_CountAction": "count",
    "BooleanOptionalAction": argparse.BooleanOptionalAction,
}


class CliUsageError(Exception):
    pass


class JsonErrorParser(argparse.ArgumentParser):
    """argparse that reports usage errors as validation errors (exit 2)."""

    def error(self, message: str) -> typing.NoReturn:
        raise CliUsageError(f"{self.prog}: {message}")


class Fallback(Exception):
    """This call must run in process (a surface command, a local op);
    `surface` names the surface command, if that is why."""

    def __init__(self, reason: str, surface: str | None = None) -> None:
        super().__init__(reason)
        self.surface = surface


@dataclass
class ThinNode:
    parser: argparse.ArgumentParser
    data: dict[str, Any]


def unsuppress(value: Any) -> Any:
    # argparse tests SUPPRESS by identity; JSON gives back an equal string.
    return argparse.SUPPRESS if value == argparse.SUPPRESS else value


def add_action(parser: Any, action: dict[str, Any]) -> None:
    """Add one serialized action to `parser` (or a mutually exclusive group)."""
    kind = action["kind"]
    strings = action["option_strings"]
    kwargs: dict[str, Any] = {
        "help": unsuppress(action["help"]),
        "default": unsuppress(action["default"]),
    }
    if kind == "BooleanOptionalAction":
        # It adds the --no- spelling itself.
        strings = [
            s
            for s in strings
            if not (s.startswith("--no-") and "--" + s[5:] in strings)
        ]
    if kind in {"_StoreAction", "_AppendAction"}:
        kwargs.update(nargs=action["nargs"], type=TYPES[action["type"]])
        kwargs.update(choices=action["choices"], metavar=unsuppress(action["metavar"]))
    elif kind == "_StoreConstAction":
        kwargs["const"] = action["const"]
    elif kind == "BooleanOptionalAction":
        kwargs["metavar"] = unsuppress(action["metavar"])
    if strings:
        kwargs.update(dest=action["dest"], required=action["required"])
        parser.add_argument(*strings, action=KINDS[kind], **kwargs)
    else:
        parser.add_argument(action["dest"], action=KINDS[kind], **kwargs)


def build_parser(
    snapshot: dict[str, Any], first_word: str | None = None
) -> tuple[JsonErrorParser, dict[tuple[str, ...], ThinNode]]:
    """The parser tree of the snapshot; with `first_word`, that branch only
    (as dispatchsite.surfaces.cli.build_parser)."""
    nodes_data: dict[str, dict[str, Any]] = snapshot["nodes"]

    def wanted(path: tuple[str, ...]) -> bool:
        return first_word is None or not path or path[0] == first_word

    def make(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
        data = nodes_data[" ".join(path)]
        nodes[path] = ThinNode(parser=parser, data=data)
        if not data["thin"]:
            return  # left empty: callers decline before parsing into it
        exclusive = {
            dest: index
            for index, (_required, dests) in enumerate(data["exclusive"])
            for dest in dests
        }
        groups: dict[int, Any] = {}
        for action in data["actions"]:
            if action["kind"] == "_HelpAction":
                continue
            index = exclusive.get(action["dest"])
            if index is not None and index not in groups:
                groups[index] = parser.add_mutually_exclusive_group(
                    required=data["exclusive"][index][0]
                )
            if action["kind"] != "_SubParsersAction":
                add_action(parser if index is None else groups[index], action)
                continue
            children = parser.add_subparsers(
                dest=action["dest"], metavar=action["metavar"]
            )
            for word, help_text in action["choices"]:
                child_path = (*path, word)
                if not wanted(child_path):
                    continue
                child_data = nodes_data[" ".join(child_path)]
                child = children.add_parser(
                    word,
                    help=help_text,
                    description=child_data["description"],
                    prog=child_data["prog"],
                    usage=child_data["usage"],
                    epilog=child_data["epilog"],
                )
                make(child_path, child)

    root_data = nodes_data[""]
    root = JsonErrorParser(
        prog=root_data["prog"],
        usage=root_data["usage"],
        description=root_data["description"],
        epilog=root_data["epilog"],
    )
    nodes: dict[tuple[str, ...], ThinNode] = {}
    make((), root)
    return root, nodes


def branch_thin(snapshot: dict[str, Any], first_word: str | None) -> bool:
    """Whether every parser of the branch was representable (for the whole
    tree: the root, as `thin_argv` keeps argv out of the other branches)."""
    return all(
        data["thin"]
        for key, data in snapshot["nodes"].items()
        if (key == "" if first_word is None else key.split(" ")[0] == first_word)
    )


def thin_argv(snapshot: dict[str, Any], argv: list[str]) -> bool:
    """Whether parsing `argv` on the whole tree stays in representable
    parsers: no word of it names a branch that is not."""
    return not any(
        not branch_thin(snapshot, word)
        for word in argv
        if word and " " not in word and word in snapshot["nodes"]
    )


def op_shape(op: dict[str, Any]) -> OpShape:
    return OpShape(
        id=op["id"],
        cli=op["cli"],
        switch=op["switch"],
        required=frozenset(op["required"]),
    )


def resolve(
    snapshot: dict[str, Any], nodes: dict[tuple[str, ...], ThinNode], args: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(op, params) for parsed `args`, as dispatch_args would run them;
    Fallback for what only the in-process CLI runs."""
    words = command_words(args)
    node = nodes.get(tuple(words))
    switches = node.data["switch_commands"] if node else {}
    # A parent's set_defaults stays in the namespace under its children.
    for depth in range(len(words) + 1):
        above = nodes.get(tuple(words[:depth]))
        if above is not None and above.data["surface_command"] is not None:
            raise Fallback("surface command", above.data["surface_command"])
    if any(getattr(args, dest, False) for dest in switches):
        raise Fallback("switch command")
    for switched in switches.values():
        for name in switched["switch_only"]:
            if hasattr(args, name):
                raise CliUsageError(
                    f"--{name.replace('_', '-')} only applies to "
                    f"`dispatch {switched['spelling']}`"
                )
    if node is None or not node.data["ops"]:
        raise CliUsageError(
            f"dispatch {' '.join(words)}: choose a subcommand (see --help)"
        )
    shapes = [op_shape(snapshot["ops"][op_id]) for op_id in node.data["ops"]]
    values = vars(args)
    chosen = choose_op(shapes, values)
    params = op_params(
        ops=shapes,
        op=chosen,
        dests=node.data["dests"],
        positional_flags=node.data["positional_flags"],
        choice_flags=node.data["choice_flags"],
        values=values,
    )
    return snapshot["ops"][chosen.id], params
