"""`dispatch <verb>` over REST with the daemon up, as the user sees it.

Each call is compared with the same call run in process (DISPATCH_THIN=0):
same exit status, stdout and stderr. The thin calls must not import Django
or pydantic, and the snapshot cache is owner-only and refreshed when stale.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable

import pytest

from tests.support.stack import Stack
from tests.support.thin_probe import PROBE

pytestmark = pytest.mark.e2e

CALLS = [
    ("list",),
    ("list", "--format", "table"),
    ("get", "mid"),
    ("get", "no-such-lane"),
    ("list", "--page-size", "many"),
    ("get", "mid", "--bogus"),
    ("trigger", "list"),
    ("request", "list"),
    ("queue", "list", "mid"),
    ("goal", "--help"),
    ("--help",),
    ("schema", "list"),
    ("schema", "nope"),
    ("completion", "bash"),
]


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    stack = start_stack(web=True)
    # Where `dispatch up` records its web server (the stack has no supervisor).
    state = stack.run_dir / "supervisor.json"
    state.write_text(json.dumps({"url": stack.web_url}))
    return stack


def probe(
    stack: Stack, *argv: str, env: dict[str, str] | None = None
) -> tuple[int, str, list[str]]:
    """(status, stdout, modules imported) of `dispatch argv`."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env={**stack.env, **(env or {})},
        cwd=stack.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    marker = done.stderr.strip().splitlines()[-1]
    assert marker.startswith("IMPORTED "), done.stderr
    return done.returncode, done.stdout, json.loads(marker.removeprefix("IMPORTED "))


def test_it_answers_reads_over_rest_exactly_as_in_process(stack: Stack) -> None:
    stack.cli_ok("new", "--name", "mid", "--text", "warm up")
    # No token yet: this call runs in process and makes the local one.
    assert stack.cli("list").status == 0
    token = stack.run_dir / "cli-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    for argv in CALLS:
        thin = stack.cli(*argv)
        local = stack.cli(*argv, env={"DISPATCH_THIN": "0"})
        assert (thin.status, thin.stdout, thin.stderr) == (
            local.status,
            local.stdout,
            local.stderr,
        ), argv
    cache = stack.run_dir / "cli-snapshot.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert json.loads(cache.read_text())["ops"]["roster"]["thin"] is True


def test_it_imports_neither_django_nor_pydantic_for_a_read(stack: Stack) -> None:
    stack.cli_ok("new", "--name", "mid", "--text", "warm up")
    stack.cli("list")  # makes the token
    status, out, imported = probe(stack, "list")
    assert status == 0 and json.loads(out)["lanes"][0]["handle"] == "@mid"
    assert imported == []
    # The local daemon and token only: a client setting for another
    # dispatch changes nothing here.
    elsewhere = {"DISPATCH_URL": "http://127.0.0.1:9", "DISPATCH_TOKEN": "other"}
    assert probe(stack, "list", env=elsewhere) == (status, out, [])
    # So does a write (tests/surfaces/test_thin_writes.py compares them).
    status, out, imported = probe(stack, "send", "mid", "later", "--queue")
    assert (status, imported) == (0, [])
    # Unless it names a path the daemon would resolve in its own cwd.
    status, _out, imported = probe(
        stack, "new", "--dry-run", "--name", "x", "--cwd", "."
    )
    assert "django" in imported


def test_it_refetches_a_stale_snapshot_and_recovers_a_refused_token(
    stack: Stack,
) -> None:
    stack.cli("list")
    assert stack.cli("list").status == 0
    cache = stack.run_dir / "cli-snapshot.json"
    snapshot = json.loads(cache.read_text())
    current = snapshot["hash"]
    snapshot["hash"] = "from-an-older-registry"
    cache.write_text(json.dumps(snapshot))
    status, out, imported = probe(stack, "list")
    assert (status, json.loads(out), imported) == (0, {"lanes": []}, [])
    assert json.loads(cache.read_text())["hash"] == current
    # A revoked local token: the call runs in process and a new one is made.
    old = (stack.run_dir / "cli-token").read_text().strip()
    stack.cli_ok("token", "revoke", "cli-local", "--yes")
    assert stack.cli("list").status == 0
    assert (stack.run_dir / "cli-token").read_text().strip() != old
    assert probe(stack, "list")[2] == []
