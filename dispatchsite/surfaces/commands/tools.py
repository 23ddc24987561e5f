"""Surface tools: `schema`, `completion` and `token ...`.

Imported by every CLI call (to build the parser), so module level stays
stdlib-only; the work is imported inside each command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dispatchsite.core.commands import register_command
from dispatchsite.surfaces.completion import completion_script

SHELLS = ("bash", "zsh", "fish")


# -- schema -------------------------------------------------------------------


def configure_schema(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "command_words",
        nargs=argparse.REMAINDER,
        metavar="command",
        help='a CLI spelling ("goal set", "list --unmanaged") or an op id',
    )


def find_op_for(words: list[str]) -> Any:
    """The op a CLI spelling or op id names; ValidationError if none."""
    from dispatchsite.core.errors import ValidationError
    from dispatchsite.core.registry import load_ops

    spelling = " ".join(" ".join(words).split())
    if not spelling:
        raise ValidationError("name a command", hint="e.g. `dispatch schema send`")
    ops = load_ops()
    by_cli = {op.cli: op for op in ops.values()}
    op = by_cli.get(spelling) or ops.get(spelling)
    if op is None:
        known = sorted(by_cli)
        raise ValidationError(
            f"unknown command {spelling!r}",
            hint="known: " + ", ".join(known),
            data={"commands": known},
        )
    return op


@register_command(
    "schema",
    help="print the input and output JSON schemas of a command",
    configure=configure_schema,
)
def schema(args: argparse.Namespace) -> dict[str, Any]:
    words = [w for w in args.command_words if w != "--json"]
    op = find_op_for(words)
    return {
        "command": op.cli,
        "op": op.id,
        "input": op.input_schema(),
        "output": op.output_schema(),
    }


# -- completion ---------------------------------------------------------------


def configure_completion(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS)


def command_tree() -> dict[str, dict[str, Any]]:
    """{"dispatch goal set": {"commands": {word: help}, "options": [...]}}."""
    from dispatchsite.surfaces.cli import build_parser

    _root, nodes = build_parser()
    tree: dict[str, dict[str, Any]] = {}
    for path, node in nodes.items():
        options = sorted(
            {
                flag
                for action in node.parser._actions
                for flag in action.option_strings
                if flag.startswith("--")
            }
        )
        children: dict[str, str] = {}
        if node.children is not None:
            helps = {a.dest: a.help or "" for a in node.children._choices_actions}
            for word in node.children.choices:
                children[word] = helps.get(word, "")
        tree[" ".join(("dispatch", *path))] = {"commands": children, "options": options}
    return tree


@register_command(
    "completion",
    help="print a shell completion script (bash, zsh or fish)",
    configure=configure_completion,
)
def completion(args: argparse.Namespace) -> None:
    sys.stdout.write(completion_script(args.shell, command_tree()))
    sys.stdout.flush()


# -- tokens -------------------------------------------------------------------


def configure_token_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="token name")


def configure_token_revoke(parser: argparse.ArgumentParser) -> None:
    configure_token_name(parser)
    parser.add_argument("--yes", "-y", action="store_true", help="confirm")
    parser.add_argument("--no-interactive", action="store_true", help="never prompt")


def configure_token_create(parser: argparse.ArgumentParser) -> None:
    configure_token_name(parser)
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="read ops only: writes and destroys are refused (403 authority)",
    )
    parser.add_argument(
        "--lane",
        action="append",
        default=[],
        metavar="LANE",
        help="only this lane (ref, thread id or @handle); repeat for more",
    )
    parser.add_argument(
        "--expires",
        metavar="WHEN",
        help="refused after this: a duration (30m, 12h, 7d, 2w) or an ISO-8601 "
        "time (UTC when it has no offset)",
    )


@register_command(
    "token create",
    help="create an API token for REST, MCP and websockets (shown once)",
    configure=configure_token_create,
)
def token_create(args: argparse.Namespace) -> dict[str, Any]:
    from lanes.tokens import api_token_as_dict, api_token_create

    token, raw = api_token_create(
        name=args.name, read_only=args.read_only, lanes=args.lane, expires=args.expires
    )
    return {
        **api_token_as_dict(token),
        "token": raw,
        "note": "store it now: only its hash is kept",
    }


@register_command(
    "token list", help="list API tokens and their scopes (never their values)"
)
def token_list(args: argparse.Namespace) -> dict[str, Any]:
    from lanes.models import ApiToken
    from lanes.tokens import api_token_as_dict

    return {"tokens": [api_token_as_dict(t) for t in ApiToken.objects.order_by("name")]}


def confirmed(args: argparse.Namespace, question: str) -> None:
    from dispatchsite.core.errors import ValidationError

    if args.yes:
        return
    if args.no_interactive or not sys.stdin.isatty():
        raise ValidationError(
            f"{question}: destructive, needs confirmation", hint="pass --yes"
        )
    if input(f"{question}? [y/N] ").strip().lower() not in {"y", "yes"}:
        raise ValidationError("not confirmed", hint="pass --yes to skip the prompt")


@register_command(
    "token revoke",
    help="revoke an API token (destructive: --yes)",
    configure=configure_token_revoke,
)
def token_revoke(args: argparse.Namespace) -> dict[str, Any]:
    from lanes.tokens import api_token_as_dict, api_token_revoke

    confirmed(args, f"revoke API token {args.name!r}")
    return api_token_as_dict(api_token_revoke(name=args.name))
