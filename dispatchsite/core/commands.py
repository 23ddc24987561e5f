"""CLI commands that are not ops: process control and surface tools.

Ops (lane verbs, reads) come from the op registry; these are the few verbs
that manage the local installation itself (`up`, `down`, `worker`, `doctor`,
`registry migrate`, `schema`, `completion`, `mcp`, `token ...`). Each module
that defines some registers them at import time; `load_commands()` imports
those modules.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SurfaceCommand:
    spelling: str  # "up", "registry migrate"; "watch --follow" = a switch on `watch`
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    # Returns a JSON-able result printed on stdout, or None when the command
    # printed its own output (e.g. completion scripts, streaming).
    run: Callable[[argparse.Namespace], Any]
    aliases: tuple[str, ...] = field(default=())
    # For a switch command: argument dests that mean nothing without the
    # switch (defaulting to argparse.SUPPRESS), refused when it is off; and
    # the op's arguments it reads, the op's others being refused when it is on.
    switch_only: tuple[str, ...] = field(default=())
    switch_takes: tuple[str, ...] = field(default=())


COMMANDS: dict[str, SurfaceCommand] = {}


def register_command(
    spelling: str,
    *,
    help: str,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
    switch_only: tuple[str, ...] = (),
    switch_takes: tuple[str, ...] = (),
) -> Callable[
    [Callable[[argparse.Namespace], Any]], Callable[[argparse.Namespace], Any]
]:
    """Decorator: register `run(args)` as the CLI command `spelling`."""

    def decorator(
        run: Callable[[argparse.Namespace], Any],
    ) -> Callable[[argparse.Namespace], Any]:
        if spelling in COMMANDS:
            raise RuntimeError(f"CLI command {spelling!r} registered twice")
        COMMANDS[spelling] = SurfaceCommand(
            spelling=spelling,
            help=help,
            configure=configure or (lambda parser: None),
            run=run,
            switch_only=switch_only,
            switch_takes=switch_takes,
        )
        return run

    return decorator


def load_commands() -> dict[str, SurfaceCommand]:
    """Every command of every installed app (its `commands` module or package)."""
    from dispatchsite.core.autodiscover import discover

    discover("commands")
    return COMMANDS
