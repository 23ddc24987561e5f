"""What the in-process CLI does between parsing an op and running it, done
by the thin client in the caller's process, the same way.

Runs the in-process CLI's own steps (dispatchsite.surfaces.argv) on the
snapshot's op data: path fields are made absolute against the caller's cwd
(the daemon, on the same machine and run by the same user, opens them), a
`-` path's stdin is read here and sent as the op's `stdin`, and a destroy
prompts on the caller's terminal. tests/surfaces/test_thin_client.py
compares both paths end to end.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import dataclass
from typing import Any

from dispatchsite.surfaces.argv import confirm, path_params


@dataclass
class Kept:
    """Input a call consumed once (stdin, the user's "yes"): kept across a
    stale-snapshot retry, and stdin given back when the call then runs in
    process after all."""

    stdin: bytes | None = None
    confirmed: bool = False

    def give_back(self) -> None:
        if self.stdin is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(self.stdin), encoding="utf-8")
            self.stdin = None


def file_params(op: dict[str, Any], params: dict[str, Any], kept: Kept) -> None:
    """As cli.file_params; and the caller's cwd where the handler would
    take the process's own (cli_snapshot.CALLER_CWD_OPS)."""

    def read_stdin() -> bytes:
        if kept.stdin is None:
            kept.stdin = sys.stdin.buffer.read()
        return kept.stdin

    path_params(op["files"], params, read_stdin)
    if op["caller_cwd"] and params.get("cwd") is None:
        params["cwd"] = os.getcwd()


def confirm_destroy(
    op: dict[str, Any], args: argparse.Namespace, params: dict[str, Any], kept: Kept
) -> None:
    """As cli.confirm_destroy, remembering a yes across a retried call."""
    if kept.confirmed:
        return
    confirm(
        cli=op["cli"],
        summary=op["summary"],
        target=" ".join(str(params[p]) for p in op["positionals"] if p in params),
        yes=getattr(args, "yes", False),
        no_interactive=getattr(args, "no_interactive", False),
    )
    kept.confirmed = True
