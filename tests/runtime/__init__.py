"""Helpers for the runtime tests: an isolated environment and the real CLI.

Every test gets its own DISPATCH_HOME and CODEX_HOME; the codex binary is a
wrapper around tests/fakes/fake_appserver.py that also answers `--version`
the way codex 0.169.0 does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.test import override_settings

from tests.support import stack
from tests.support.stack import fake_codex_wrapper as fake_codex

__all__ = ["CliResult", "cli", "cli_env", "dispatch_home", "fake_codex"]

REPO = Path(__file__).resolve().parents[2]
FAKE_APPSERVER = REPO / "tests" / "fakes" / "fake_appserver.py"
HOST = "testhost"


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for a `dispatch` subprocess rooted at `root`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DISPATCH_", "CODEX_", "FAKE_APPSERVER_", "DJANGO_"))
        and key not in ("DATABASE_URL",)
    }
    (root / "codex-home").mkdir(parents=True, exist_ok=True)
    env.update(
        DJANGO_SETTINGS_MODULE="dispatchsite.settings",
        DISPATCH_HOME=str(root / "home"),
        CODEX_HOME=str(root / "codex-home"),
        DISPATCH_HOST=HOST,
        DISPATCH_CODEX_BIN=str(fake_codex(root)),
    )
    env.update(extra)
    return env


class CliResult(stack.CliResult):
    @property
    def error(self) -> dict[str, Any]:
        """Runtime errors must be exactly one line (the issue asks for it)."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {self.stderr}"
        return dict(json.loads(lines[0])["error"])


def cli(*args: str, env: dict[str, str], timeout: float = 90) -> CliResult:
    completed = subprocess.run(
        [sys.executable, "-m", "dispatchsite.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


@contextmanager
def dispatch_home(home: Path, **extra: Any) -> Iterator[Path]:
    """Point this process's settings at `home` (for in-process tests)."""
    with override_settings(
        DISPATCH_HOME=home,
        DISPATCH_RUN_DIR=home / "run",
        DISPATCH_LOG_DIR=home / "logs",
        DISPATCH_CONFIG_FILE=home / "config.toml",
        DISPATCH_HOST=HOST,
        **extra,
    ):
        yield home


def pid_gone(pid: int) -> bool:
    """No such process, or a zombie (dead; init reaps our orphans in its time)."""
    return not stack.pid_alive(pid)
