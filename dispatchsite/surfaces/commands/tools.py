"""Surface tools: `schema`, `completion` and `token ...`.

Imported by every CLI call (to build the parser), so module level stays
stdlib-only; the work is imported inside each command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dispatchsite.core.commands import register_command

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


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


BASH_TEMPLATE = """# dispatch completion for bash (`dispatch completion bash`)
_dispatch_complete() {
    local -A commands=(
%(commands)s
    )
    local -A options=(
%(options)s
    )
    local path="dispatch" word next i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        next="$path $word"
        if [[ -n "${options[$next]+set}" ]]; then
            path="$next"
        fi
    done
    local cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${options[$path]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${commands[$path]}" -- "$cur"))
    fi
}
complete -o default -F _dispatch_complete dispatch
"""

FISH_TEMPLATE = """# dispatch completion for fish (`dispatch completion fish`)
function __dispatch_path
    set -l known %(paths)s
    set -l path dispatch
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; and continue
        set -l next "$path $word"
        contains -- $next $known; and set path $next
    end
    echo $path
end
function __dispatch_at
    test (__dispatch_path) = "$argv[1]"
end
complete -c dispatch -f
%(lines)s
"""


def completion_script(shell: str, tree: dict[str, dict[str, Any]] | None = None) -> str:
    """The script for `shell`; `tree` as command_tree() (the thin client
    passes the one its snapshot carries)."""
    tree = command_tree() if tree is None else tree
    if shell in {"bash", "zsh"}:
        commands = "\n".join(
            f"        [{sh_quote(path)}]={sh_quote(' '.join(sorted(node['commands'])))}"
            for path, node in sorted(tree.items())
        )
        options = "\n".join(
            f"        [{sh_quote(path)}]={sh_quote(' '.join(node['options']))}"
            for path, node in sorted(tree.items())
        )
        script = BASH_TEMPLATE % {"commands": commands, "options": options}
        if shell == "zsh":
            # zsh runs bash completion functions through bashcompinit.
            script = (
                "# dispatch completion for zsh (`dispatch completion zsh`)\n"
                "autoload -U +X bashcompinit && bashcompinit\n"
                + script.split("\n", 1)[1]
            )
        return script
    lines = []
    for path, node in sorted(tree.items()):
        when = f"complete -c dispatch -n {sh_quote('__dispatch_at ' + sh_quote(path))}"
        for word, help_text in sorted(node["commands"].items()):
            lines.append(f"{when} -a {sh_quote(word)} -d {sh_quote(help_text[:60])}")
        for flag in node["options"]:
            lines.append(f"{when} -l {sh_quote(flag[2:])}")
    paths = " ".join(sh_quote(path) for path in sorted(tree))
    return FISH_TEMPLATE % {"paths": paths, "lines": "\n".join(lines)}


@register_command(
    "completion",
    help="print a shell completion script (bash, zsh or fish)",
    configure=configure_completion,
)
def completion(args: argparse.Namespace) -> None:
    sys.stdout.write(completion_script(args.shell))
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
