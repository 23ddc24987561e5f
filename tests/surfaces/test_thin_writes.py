"""`dispatch <write verb>` over REST, as the user sees it and as audited.

Each thin call (checked to import neither Django nor pydantic, so it did not
fall back) is compared with the same call run in process (DISPATCH_THIN=0):
same exit status, stdout, stderr and audit row (surface "cli", the OS user).
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from dispatchsite.core.origin import local_user
from tests.support.stack import Stack
from tests.support.thin_probe import PROBE

pytestmark = pytest.mark.e2e

# Values that differ between two identical calls made one after the other
# (the worker delivers the first queued message while the second is sent).
VARYING = [
    (re.compile(r"message \d+"), "message N"),
    (re.compile(r'"queued_message_id": \d+'), '"queued_message_id": N'),
    (re.compile(r"pending=\d+"), "pending=N"),
    (re.compile(r'"status": "(idle|busy)"'), '"status": "S"'),
    (re.compile(r'"updated_at": "[^"]*"'), '"updated_at": "T"'),
]
# A goal that starts no turn, so that both calls find the same lane.
PAUSED_GOAL = ("goal", "set", "mid", "ship it", "--status", "paused")
# The caller's rows; the worker's own (a queued message delivered) come when
# they come.
AUDIT = (
    "select op, lane, outcome, surface, actor, detail from lanes_auditentry"
    " where surface != 'worker'"
)


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    stack = start_stack(web=True)
    state = stack.run_dir / "supervisor.json"
    state.write_text(json.dumps({"url": stack.web_url}))
    stack.cli_ok("new", "--name", "mid", "--text", "warm up")
    # The daemon is up and this user has no CLI token yet: this call runs
    # in process and makes it.
    stack.cli_ok("list")
    return stack


def dispatch(
    stack: Stack,
    *argv: str,
    thin: bool,
    stdin: str = "",
    env: dict[str, str] | None = None,
    expect_thin: bool | None = None,
) -> tuple[int, str, str, list[tuple[Any, ...]]]:
    """(status, stdout, stderr, audit rows added) of `dispatch argv` run in
    the stack's root (so relative paths are the caller's); `thin` False
    forces the in-process path, and the call must have taken the thin one
    exactly when `expect_thin` (default: `thin`)."""
    before = len(stack.query(AUDIT))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env={**stack.env, **(env or {}), **({} if thin else {"DISPATCH_THIN": "0"})},
        cwd=stack.root,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    *errors, marker = done.stderr.strip().splitlines() or [""]
    assert marker.startswith("IMPORTED "), done.stderr
    imported = json.loads(marker.removeprefix("IMPORTED "))
    assert (imported == []) == (thin if expect_thin is None else expect_thin), (
        argv,
        imported,
    )
    out = done.stdout
    for pattern, fixed in VARYING:
        out = pattern.sub(fixed, out)
    rows = [
        tuple(VARYING[0][0].sub(VARYING[0][1], str(v)) for v in row)
        for row in stack.query(AUDIT + " order by id")[before:]
    ]
    return done.returncode, out, "\n".join(errors), rows


def same_both_ways(
    stack: Stack, *argv: str, stdin: str = "", env: dict[str, str] | None = None
) -> Any:
    thin = dispatch(stack, *argv, thin=True, stdin=stdin, env=env)
    local = dispatch(stack, *argv, thin=False, stdin=stdin, env=env)
    assert thin == local, "\n".join(
        difflib.unified_diff(thin[1].splitlines(), local[1].splitlines())
    )
    for row in thin[3]:
        assert row[3:5] == ("cli", local_user()), row
    return thin


def test_it_runs_writes_over_rest_exactly_as_in_process(stack: Stack) -> None:
    status, out, _err, rows = same_both_ways(stack, "send", "mid", "hi", "--queue")
    assert status == 0 and '"op": "queue"' in out
    assert rows == [
        ("queue", rows[0][1], "ok", "cli", local_user(), "queued message N")
    ]
    assert same_both_ways(stack, "stop", "mid")[0] == 2  # no turn: refused, audited
    assert same_both_ways(stack, *PAUSED_GOAL)[0] == 0
    assert same_both_ways(stack, "send", "nope", "hi")[0] == 4
    assert same_both_ways(stack, "rename", "nope", "other")[3][0][2] == "not_found"
    # The calling Codex thread travels too (`send --intro` names it).
    intro = ("send", "mid", "hi", "--queue", "--intro")
    assert same_both_ways(stack, *intro)[0] == 2
    caller = {"CODEX_THREAD_ID": "not-a-lane"}
    status, _out, err, _rows = same_both_ways(stack, *intro, env=caller)
    assert status == 2 and "not-a-lane is not a managed lane" in err


def test_it_confirms_a_destroy_as_in_process(stack: Stack) -> None:
    stack.cli_ok(*PAUSED_GOAL)
    # stdin is no terminal: refused without --yes, nothing audited.
    status, _out, err, rows = same_both_ways(stack, "goal", "clear", "mid")
    assert (status, rows) == (2, [])
    assert "needs confirmation" in err
    assert same_both_ways(stack, "goal", "clear", "mid", "--no-interactive")[0] == 2
    clear = ("goal", "clear", "mid", "--yes")
    thin = dispatch(stack, *clear, thin=True)
    assert stack.cli_ok("goal", "status", "mid")["goal"] is None
    stack.cli_ok(*PAUSED_GOAL)  # the same goal to clear again
    assert dispatch(stack, *clear, thin=False) == thin
    status, out, _err, rows = thin
    assert status == 0 and json.loads(out)["cleared"] is True
    assert rows == [("goal-clear", rows[0][1], "ok", "cli", local_user(), "cleared")]


def test_it_reads_file_inputs_in_the_callers_directory(stack: Stack) -> None:
    (stack.root / "goal.md").write_text("reach the goal\n")
    argv = ("new", "--dry-run", "--name", "filed", "--goal-file", "goal.md")
    status, out, _err, _rows = same_both_ways(
        stack, *argv, "--input-file", "-", stdin="from stdin\n"
    )
    plan = json.loads(out)
    assert status == 0 and plan["cwd"] == str(stack.root), plan
    sources = {source["origin"]: source for source in plan["sources"]}
    assert sources["file"]["path"] == str(stack.root / "goal.md")
    assert "stdin" in sources
    both = ("--input-file", "-", "--goal-file", "-")
    assert same_both_ways(stack, *argv[:4], *both)[0] == 2
    # A launch runs in process (it may run the workspace setup script and
    # create files in the caller's tree, with the caller's environment and
    # umask): in the caller's directory, with the file's goal.
    status, out, _err, rows = dispatch(
        stack,
        "new",
        "--name",
        "filed",
        "--goal-file",
        "goal.md",
        "--no-send",
        thin=True,
        expect_thin=False,
    )
    assert status == 0 and json.loads(out)["cwd"] == str(stack.root), out
    assert [(r[0], r[2]) for r in rows] == [("new", "ok")]
    assert rows[0][3:5] == ("cli", local_user())
    assert (
        stack.cli_ok("goal", "status", "filed")["goal"]["objective"] == "reach the goal"
    )


def rest(stack: Stack, token: str, path: str, body: Any) -> tuple[int, Any]:
    assert stack.web_url is not None
    request = urllib.request.Request(
        stack.web_url + "/api/v1" + path,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_it_keeps_the_cli_surface_to_the_local_cli_token(stack: Stack) -> None:
    refused = stack.cli("token", "create", "cli-local")
    assert refused.status == 2 and "reserved" in refused.error["message"]
    raw = stack.cli_ok("token", "create", "ci")["token"]
    before = len(stack.query(AUDIT))
    status, _body = rest(
        stack, raw, "/ops/send", {"lane": "mid", "text": "hi", "mode": "queue"}
    )
    assert status == 200
    row = stack.query(AUDIT + " order by id")[before]
    assert row[:5] == ("queue", row[1], "ok", "rest", "token:ci")
    # Only the CLI sends the stdin it read.
    status, body = rest(
        stack, raw, "/ops/new_plan", {"name": "x", "cwd": "/", "stdin": "s"}
    )
    assert status == 400 and "internal" in body["error"]["message"]
    cli_token = (stack.run_dir / "cli-token").read_text().strip()
    status, body = rest(
        stack, cli_token, "/ops/new_plan", {"name": "x", "cwd": "/", "stdin": "s"}
    )
    assert status == 200, body


def test_it_gives_stdin_back_when_the_daemon_refuses_the_call(stack: Stack) -> None:
    argv = ("new", "--dry-run", "--name", "piped", "--input-file", "-")
    expected = dispatch(stack, *argv, thin=False, stdin="from stdin\n")
    assert expected[0] == 0
    # A revoked CLI token: the thin client has read stdin before the daemon
    # refuses it, and the call then runs in process on the same input.
    stack.cli_ok("token", "revoke", "cli-local", "--yes")
    done = subprocess.run(
        [sys.executable, "-m", "dispatchsite.cli", *argv],
        env=stack.env,
        cwd=stack.root,
        input="from stdin\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == expected[:2], done.stderr
    # ... and makes a new token, so the next call is thin again.
    assert dispatch(stack, *argv, thin=True, stdin="from stdin\n") == expected


def test_it_runs_in_process_where_the_callers_environment_differs(
    stack: Stack,
) -> None:
    # The attached-writes override, the RPC timeout, the database: knobs an
    # op reads in the process that runs it, so a caller setting one gets
    # the in-process path, where it applies.
    for name, value in (
        ("DISPATCH_ALLOW_ATTACHED_WRITES", "1"),
        ("DISPATCH_RPC_TIMEOUT", "7"),
    ):
        argv = ("send", "mid", "hi", "--queue")
        status = dispatch(stack, *argv, thin=True, env={name: value}, expect_thin=False)
        assert status[0] == 0
    assert dispatch(stack, "list", thin=True)[0] == 0  # and thin again without
    # A snapshot cached from a daemon that ran with another environment is
    # fetched again rather than keeping every call in process.
    cache = stack.run_dir / "cli-snapshot.json"
    snapshot = json.loads(cache.read_text())
    cache.write_text(json.dumps({**snapshot, "env": "an older daemon's"}))
    assert dispatch(stack, "list", thin=True)[0] == 0
    assert json.loads(cache.read_text())["env"] == snapshot["env"]
