"""The `dispatch` CLI, derived from the op registry plus a few surface commands.

Every op becomes a subcommand (its `cli` spelling), its input fields become
positionals and flags. Output is JSON on stdout; errors are JSON on stderr
with the error's exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db.utils import OperationalError
from pydantic.fields import FieldInfo

from dispatchsite.core.commands import SurfaceCommand, load_commands
from dispatchsite.core.errors import DispatchError, NotStartedError, ValidationError
from dispatchsite.core.origin import Origin, local_user
from dispatchsite.core.registry import Op, execute, internal_fields, load_ops
from dispatchsite.surfaces.argv import (
    OpShape,
    choose_op,
    command_words,
    confirm,
    flag_for,
    op_params,
    path_params,
)
from dispatchsite.surfaces.formatting import (
    add_output_flags,
    output_format,
    table_text,
    tidy_help,
)


class CliUsageError(Exception):
    pass


class JsonErrorParser(argparse.ArgumentParser):
    """argparse that reports usage errors as validation errors (exit 2)."""

    def error(self, message: str) -> typing.NoReturn:
        raise CliUsageError(f"{self.prog}: {message}")


@dataclass
class Node:
    parser: argparse.ArgumentParser
    children: argparse._SubParsersAction | None = None
    ops: list[Op] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    # dest -> the ops that accept it (for composed spellings)
    dests: dict[str, set[str]] = field(default_factory=dict)
    choice_flags: dict[str, list[str]] = field(default_factory=dict)
    # positional -> its flag spellings (`stop <lane>` or `stop --lane <lane>`)
    positional_flags: dict[str, list[str]] = field(default_factory=dict)
    # switch dest -> surface command run instead of the op ("watch --follow")
    switch_commands: dict[str, SurfaceCommand] = field(default_factory=dict)


def unwrap(annotation: Any) -> tuple[Any, bool]:
    """Return (inner type, optional) for `X | None`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def field_extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def add_field_argument(node: Node, op: Op, name: str, info: FieldInfo) -> None:
    parser = node.parser
    node.dests.setdefault(name, set()).add(op.id)
    annotation, _optional = unwrap(info.annotation)
    extra = field_extra(info)
    help_text = info.description or ""
    if name in op.positionals:
        if name in node.flags:
            return
        node.flags.add(name)
        aliases = [f for f in extra.get("cli_flags", []) if f not in node.flags]
        # Strict inputs: a numeric positional (`request respond <id>`) is
        # converted here, as its flag form would be.
        numeric = {"type": annotation} if annotation in (int, float) else {}
        parser.add_argument(
            name,
            nargs=None if info.is_required() and not aliases else "?",
            default=argparse.SUPPRESS,
            help=help_text + (f" (or {' / '.join(aliases)})" if aliases else ""),
            **numeric,
        )
        if aliases:
            # Exactly one of the two, checked in op_params.
            node.flags.update(aliases)
            node.positional_flags[name] = aliases
            parser.add_argument(
                *aliases,
                dest=f"_flag_{name}",
                default=argparse.SUPPRESS,
                help=f"same as <{name}>",
            )
        return
    flags = [flag_for(name), *extra.get("cli_flags", [])]
    if any(f in node.flags for f in flags):
        return
    node.flags.update(flags)
    kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(annotation) is Literal:
        choices = [str(c) for c in typing.get_args(annotation)]
        kwargs["choices"] = choices
        if extra.get("cli_choice_flags"):
            node.choice_flags[name] = [c for c in choices if c != info.default]
            for choice in node.choice_flags[name]:
                parser.add_argument(
                    f"--{choice}",
                    dest=f"_choice_{name}_{choice}",
                    action="store_true",
                    default=argparse.SUPPRESS,
                    help=f"same as --{name.replace('_', '-')} {choice}",
                )
    elif typing.get_origin(annotation) is list:
        kwargs["action"] = "append"
    elif annotation in (int, float):
        kwargs["type"] = annotation
    parser.add_argument(*flags, help=help_text, **kwargs)


def build_parser(
    first_word: str | None = None,
) -> tuple[JsonErrorParser, dict[tuple[str, ...], Node]]:
    """The argparse tree; with `first_word`, only that command's subtree.

    Every CLI call pays for the parser, so a call builds only the branch it
    uses; help, completion and errors get the whole tree.
    """
    root = JsonErrorParser(
        prog="dispatch",
        description="dispatch: a local control plane for Codex threads (lanes)",
    )
    nodes: dict[tuple[str, ...], Node] = {(): Node(parser=root)}

    def node_for(words: Sequence[str], help_text: str) -> Node:
        path: tuple[str, ...] = ()
        for word in words:
            parent = nodes[path]
            path = (*path, word)
            if path in nodes:
                continue
            if parent.children is None:
                parent.children = parent.parser.add_subparsers(
                    dest=f"_cmd_{len(path)}", metavar="<command>"
                )
            child = parent.children.add_parser(
                word, help=help_text, description=help_text
            )
            add_output_flags(child)
            nodes[path] = Node(parser=child)
        return nodes[path]

    for op in load_ops().values():
        if first_word is not None and op.cli_words[0] != first_word:
            continue
        node = node_for(op.cli_words, op.summary)
        node.ops.append(op)
        if op.cli_switch:
            node.parser.add_argument(
                op.cli_switch,
                dest=f"_switch_{op.id}",
                action="store_true",
                default=False,
                help=op.summary,
            )
        hidden = internal_fields(op.input)
        ordered = sorted(
            op.input.model_fields.items(),
            key=lambda kv: (
                kv[0] not in op.positionals,
                op.positionals.index(kv[0]) if kv[0] in op.positionals else 0,
            ),
        )
        for name, info in ordered:
            if name not in hidden:
                add_field_argument(node, op, name, info)
        if op.intent == "destroy" and "--yes" not in node.flags:
            node.flags.update({"--yes", "--no-interactive"})
            node.parser.add_argument("--yes", "-y", action="store_true", help="confirm")
            node.parser.add_argument(
                "--no-interactive", action="store_true", help="never prompt"
            )
    for command in load_commands().values():
        words = command.spelling.split()
        if first_word is not None and words[0] != first_word:
            continue
        switch = next((w for w in words if w.startswith("--")), None)
        node = node_for([w for w in words if not w.startswith("--")], command.help)
        if switch is None:
            node.parser.set_defaults(_surface_command=command)
        else:
            # A mode of another command that is no op (e.g. a stream): the
            # switch on that command's parser selects it.
            dest = "_switch_command_" + switch[2:].replace("-", "_")
            node.parser.add_argument(
                switch, dest=dest, action="store_true", default=False, help=command.help
            )
            node.switch_commands[dest] = command
        command.configure(node.parser)
    tidy_help(nodes)
    return root, nodes


def op_shape(op: Op) -> OpShape:
    fields = op.input.model_fields
    return OpShape(
        id=op.id,
        cli=op.cli,
        switch=op.cli_switch,
        required=frozenset(n for n, f in fields.items() if f.is_required()),
    )


def chosen_op_params(node: Node, args: argparse.Namespace) -> tuple[Op, dict[str, Any]]:
    shapes = [op_shape(op) for op in node.ops]
    values = vars(args)
    chosen = choose_op(shapes, values)
    params = op_params(
        ops=shapes,
        op=chosen,
        dests=node.dests,
        positional_flags=node.positional_flags,
        choice_flags=node.choice_flags,
        values=values,
    )
    return next(op for op in node.ops if op.id == chosen.id), params


def path_inputs(op: Op) -> dict[str, dict[str, bool]]:
    """The op's path fields: name -> {"if_exists", "stdin"}."""
    return {
        name: {
            "if_exists": field_extra(info)["cli_path"] == "if_exists",
            "stdin": bool(field_extra(info).get("cli_stdin")),
        }
        for name, info in op.input.model_fields.items()
        if field_extra(info).get("cli_path")
    }


def file_params(op: Op, params: dict[str, Any]) -> dict[str, Any]:
    """Path flags made absolute against the caller's cwd; one '-' reads stdin."""
    path_params(path_inputs(op), params, sys.stdin.buffer.read)
    return params


def confirm_destroy(op: Op, args: argparse.Namespace, params: dict[str, Any]) -> None:
    confirm(
        cli=op.cli,
        summary=op.summary,
        target=" ".join(str(params[p]) for p in op.positionals if p in params),
        yes=getattr(args, "yes", False),
        no_interactive=getattr(args, "no_interactive", False),
    )


def emit(result: Any, fmt: str = "json") -> None:
    if result is None:
        return
    table = table_text(result) if fmt == "table" else None
    if table is not None:
        sys.stdout.write(table)
        sys.stdout.flush()
        return
    sys.stdout.write(
        json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    sys.stdout.flush()


def emit_error(error: DispatchError) -> int:
    sys.stderr.write(
        json.dumps(error.as_dict(), ensure_ascii=False, default=str) + "\n"
    )
    return error.exit_status


def dispatch_args(nodes: dict[tuple[str, ...], Node], args: argparse.Namespace) -> Any:
    command: SurfaceCommand | None = getattr(args, "_surface_command", None)
    if command is not None:
        return command.run(args)
    words = command_words(args)
    node = nodes.get(tuple(words))
    for dest, switched in (node.switch_commands if node else {}).items():
        if getattr(args, dest, False):
            assert node is not None
            for name in set(node.dests) - set(switched.switch_takes):
                if hasattr(args, name):
                    raise ValidationError(
                        f"{flag_for(name)} does not apply to "
                        f"`dispatch {switched.spelling}`",
                        hint=f"it belongs to `dispatch {' '.join(words)}` "
                        f"without {switched.spelling.split()[-1]}",
                    )
            return switched.run(args)
    for switched in (node.switch_commands if node else {}).values():
        for name in switched.switch_only:
            if hasattr(args, name):
                raise CliUsageError(
                    f"--{name.replace('_', '-')} only applies to "
                    f"`dispatch {switched.spelling}`"
                )
    if node is None or not node.ops:
        raise CliUsageError(
            f"dispatch {' '.join(words)}: choose a subcommand (see --help)"
        )
    op, params = chosen_op_params(node, args)
    params = file_params(op, params)
    if op.intent == "destroy":
        confirm_destroy(op, args, params)
    caller = os.environ.get("CODEX_THREAD_ID") or None
    origin = Origin(surface="cli", actor=local_user(), caller_thread_id=caller)
    return execute(op.id, params, origin)


def main(argv: Sequence[str]) -> int:
    try:
        first = argv[0] if argv and not argv[0].startswith("-") else None
        parser, nodes = build_parser(first)
        if first is not None and (first,) not in nodes:
            parser, nodes = build_parser()  # an unknown command: full usage
        if not argv:
            parser.print_help()
            return 2
        args = parser.parse_args(list(argv))
        emit(dispatch_args(nodes, args), output_format(args))
        return 0
    except CliUsageError as exc:
        return emit_error(ValidationError(str(exc), hint="see `dispatch --help`"))
    except DispatchError as exc:
        return emit_error(exc)
    except OperationalError as exc:
        if "no such table" in str(exc) or "unable to open database" in str(exc):
            return emit_error(
                NotStartedError(
                    "dispatch has not been started in this DISPATCH_HOME "
                    f"(its database does not exist yet: {exc})",
                    hint="start it with `dispatch up` "
                    "(or create the database with `dispatch registry migrate`)",
                )
            )
        raise
    except KeyboardInterrupt:
        return 130
