"""A real dispatch stack for end-to-end op tests: redis, worker, fake app-server.

`stack` is a module-scoped tests.support.stack.Stack on the fake app-server
with a copy of a database migrated once per session. Tests drive it through
`cli(...)`, the real CLI in a subprocess, so they assert on what users see:
stdout JSON, stderr JSON and the exit status.

A test module changes the stack's environment by overriding the
module-scoped `stack_env` fixture.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.foreign import foreign_thread
from tests.support.stack import DB_NAME, REPO, Stack, wait_for

__all__ = ["Stack", "cli", "foreign_thread", "wait_for"]

CLI_TIMEOUT = 60.0


def cli(
    *args: str, env: dict[str, str], timeout: float = CLI_TIMEOUT
) -> tuple[int, Any, Any]:
    """Run `dispatch <args>`; return (exit status, stdout JSON, stderr JSON)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dispatchsite.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, _json_or_text(proc.stdout), _json_or_text(proc.stderr)


def _json_or_text(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # stderr may carry log lines before the JSON error: take the last line.
        try:
            return json.loads(text.splitlines()[-1])
        except ValueError:
            return text


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `dispatch registry migrate` per session; each stack gets a copy."""
    template = Stack(tmp_path_factory.mktemp("template"))
    status, out, err = cli(
        "registry", "migrate", "--no-backup", env=template.env, timeout=180
    )
    assert status == 0, (out, err)
    db = template.home / DB_NAME
    with sqlite3.connect(db) as conn:  # fold the WAL in: one file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Extra environment for the module's stack; override in a test module."""
    return {}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_db: Path,
    stack_env: dict[str, str],
) -> Iterator[Stack]:
    started = Stack(
        tmp_path_factory.mktemp("st"),
        template_db=migrated_db,
        extra_env={"DISPATCH_RPC_TIMEOUT": "10", **stack_env},
    )
    try:
        yield started.start()
    finally:
        started.stop()
