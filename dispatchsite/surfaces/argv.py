"""From parsed argv to an op and its params: one rule for both CLIs.

The in-process CLI (dispatchsite.surfaces.cli) works from the op registry,
the thin CLI (dispatchsite.thin) from the snapshot the daemon serves; both
describe each op as an OpShape, so that they choose ops and assemble params
the same way. Stdlib only: the thin CLI imports it without Django.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dispatchsite.core.errors import ValidationError


@dataclass(frozen=True)
class OpShape:
    id: str
    cli: str
    # The flag selecting the op in a composed spelling ("list --unmanaged").
    switch: str | None
    required: frozenset[str]


def flag_for(name: str) -> str:
    return "--" + name.replace("_", "-")


def choose_op(ops: Sequence[OpShape], values: Mapping[str, Any]) -> OpShape:
    switched = [op for op in ops if op.switch and values.get(f"_switch_{op.id}")]
    if len(switched) > 1:
        raise ValidationError("choose one of " + ", ".join(op.cli for op in switched))
    if switched:
        return switched[0]
    return next(op for op in ops if not op.switch)


def op_params(
    *,
    ops: Sequence[OpShape],
    op: OpShape,
    dests: Mapping[str, Collection[str]],
    positional_flags: Mapping[str, Sequence[str]],
    choice_flags: Mapping[str, Sequence[str]],
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """The params `values` give `op`; refuses flags of a sibling op."""
    params: dict[str, Any] = {}
    for name, owners in dests.items():
        if name not in values:
            continue
        if op.id not in owners:
            spellings = sorted(o.cli for o in ops if o.id in owners)
            raise ValidationError(
                f"{flag_for(name)} does not apply to `dispatch {op.cli}`",
                hint="it belongs to "
                + " / ".join(f"`dispatch {s}`" for s in spellings),
            )
        params[name] = values[name]
    for name, aliases in positional_flags.items():
        flagged = values.get(f"_flag_{name}")
        if flagged is not None and name in params:
            raise ValidationError(
                f"{name} given twice: as <{name}> and as {aliases[0]}",
                hint=f"pass one: `dispatch {op.cli} <{name}>` or {aliases[0]} <{name}>",
            )
        if flagged is not None:
            params[name] = flagged
        if name not in params and name in op.required:
            raise ValidationError(
                f"`dispatch {op.cli}` needs a {name}",
                hint=f"`dispatch {op.cli} <{name}>` or {aliases[0]} <{name}>",
            )
    for name, choices in choice_flags.items():
        picked = [c for c in choices if values.get(f"_choice_{name}_{c}")]
        explicit = values.get(name)
        if len(picked) + (1 if explicit is not None else 0) > 1:
            raise ValidationError(
                f"choose exactly one {name}: "
                + ", ".join(
                    [f"--{c}" for c in picked]
                    + ([f"--{name} {explicit}"] if explicit else [])
                ),
                hint=f"pass one of --{' --'.join(choices)} or --{name}",
            )
        if picked:
            params[name] = picked[0]
    return params


def confirm(
    *, cli: str, summary: str, target: str, yes: bool, no_interactive: bool
) -> None:
    """A destroy's confirmation: `--yes`, else a `[y/N]` question at a
    terminal; refused without one (or with --no-interactive)."""
    if yes:
        return
    if no_interactive or not sys.stdin.isatty():
        raise ValidationError(
            f"`dispatch {cli}` is destructive and needs confirmation",
            hint="pass --yes to confirm",
        )
    answer = input(f"{summary} ({target})? [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise ValidationError("not confirmed", hint="pass --yes to skip the prompt")


def command_words(args: Any) -> list[str]:
    """The subcommand words argparse parsed (`_cmd_1`, `_cmd_2`, ...)."""
    words = []
    depth = 1
    while (word := getattr(args, f"_cmd_{depth}", None)) is not None:
        words.append(word)
        depth += 1
    return words


def path_params(
    files: Mapping[str, Mapping[str, bool]],
    params: dict[str, Any],
    read_stdin: Callable[[], bytes],
) -> None:
    """Path inputs (`files`: name -> {"if_exists", "stdin"}) made absolute
    against the caller's cwd; one `-` reads stdin into `params["stdin"]`.

    The op may run in another process (the daemon has no stdin and another
    cwd), so the CLI reads stdin itself and sends the content."""
    readers = []
    for name, spec in files.items():
        value = params.get(name)
        if not isinstance(value, str):
            continue
        if value == "-" and spec["stdin"]:
            readers.append(name)
        elif value != "-" and (not spec["if_exists"] or os.path.exists(value)):
            params[name] = os.path.abspath(os.path.expanduser(value))
    if len(readers) > 1:
        raise ValidationError(
            " and ".join(flag_for(n) for n in readers) + " both read stdin",
            hint="only one input may come from stdin; pass the others as files",
        )
    if readers:
        try:
            params["stdin"] = read_stdin().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{flag_for(readers[0])} -: stdin is not UTF-8 ({exc.reason})",
                hint="pipe UTF-8 text",
            ) from None
