"""Done-when: a packet with every file kind launches a lane in a new worktree.

Runs the real `codex app-server` against the mock Responses server, driven
through the CLI as users do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.codex_env import codex_binary
from tests.support.mock_responses import MockResponsesServer, last_user_text
from tests.support.stack import Stack, wait_for
from tests.workspaces.conftest import FULL_PACKET, git_repo, write_packet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(codex_binary() is None, reason="codex binary not installed"),
    pytest.mark.parametrize("start_stack", ["real"], indirect=True),
]

ANSWER = '{"ok": true}'


def lane_admin_page(stack: Stack, lane_pk: int) -> str:
    """The lane's admin change page, rendered in a process of the stack's home."""
    script = (
        "import django,sys;django.setup();"
        "from django.test import Client;"
        "from django.contrib.auth.models import User;"
        "u=User.objects.create_superuser('root','r@example.com','pw');"
        "c=Client(HTTP_HOST='127.0.0.1');c.force_login(u);"
        f"r=c.get('/admin/lanes/lane/{lane_pk}/change/');"
        "sys.stdout.write(str(r.status_code)+'\\n'+r.content.decode())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=stack.env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    status, _, body = done.stdout.partition("\n")
    assert status == "200", done.stderr[-2000:]
    return body


def test_it_launches_a_full_packet_in_a_new_worktree(
    start_stack: Callable[..., Stack], mock: MockResponsesServer, tmp_path: Path
) -> None:
    stack = start_stack()
    repo = git_repo(tmp_path / "repo")
    packet = write_packet(tmp_path / "packet", **FULL_PACKET)
    mock.queue({"kind": "message", "text": ANSWER})
    args = (
        "new",
        "--name",
        "full",
        "--cwd",
        str(repo),
        "--packet",
        str(packet),
        "--worktree",
        "create",
    )

    plan = stack.cli_ok(*args, "--dry-run")
    worktree_path = Path(plan["worktree"]["path"])
    assert plan["worktree"]["state"] == "planned"
    assert not worktree_path.exists()
    assert stack.query("select count(*) from lanes_lane") == [(0,)]
    assert mock.requests("/v1/responses") == []
    branches = subprocess.run(
        ["git", "branch", "--list"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert "dispatch/full" not in branches

    lane = stack.cli_ok(*args)
    assert lane["message_accepted"] is True and lane["goal_set"] is True
    # The dry run showed exactly the sources (and hashes) the launch used.
    assert lane["sources"] == plan["sources"]
    assert {s["slot"] for s in lane["sources"]} == {
        "goal",
        "prompt",
        "output_schema",
        "base",
        "developer",
        "config",
    }
    assert lane["unknown_packet_files"] == ["notes.txt"]
    assert lane["cwd"] == str(worktree_path)
    assert lane["worktree"]["state"] == "created"
    assert (worktree_path / "README").is_file()
    assert (
        "dispatch/full"
        in subprocess.run(
            ["git", "branch", "--list"], cwd=repo, capture_output=True, text=True
        ).stdout
    )

    first = mock.wait_for_requests(1, timeout=60)[0]["body"]
    developer = [
        part["text"]
        for item in first["input"]
        if item.get("role") == "developer"
        for part in item["content"]
    ]
    # thread/start's baseInstructions and developerInstructions, in that order.
    assert developer[:2] == [
        FULL_PACKET["base_dot_md"],
        FULL_PACKET["developer_dot_md"],
    ]
    assert last_user_text(first.get("input")) == FULL_PACKET["prompt_dot_md"]
    assert (
        json.loads(FULL_PACKET["output_dot_schema_dot_json"])["required"]
        == (first["text"]["format"]["schema"]["required"])
    )

    got = wait_for(
        lambda: (g := stack.cli_ok("get", lane["ref"]))["output_checks"] and g,
        timeout=60,
        what="the first turn's output check",
    )
    assert got["goal"]["objective"] == FULL_PACKET["goal_dot_md"]
    assert got["output_checks"][0]["output_valid"] is True
    files = {f["path"]: f for f in got["launch"]["packet"]["files"]}
    assert set(files) == {
        "base.md",
        "codex/config.toml",
        "developer.md",
        "dispatch.toml",
        "goal.md",
        "hooks/pre.sh",
        "output.schema.json",
        "prompt.md",
    }
    assert files["goal.md"]["sha256"] == next(
        s["sha256"] for s in plan["sources"] if s["slot"] == "goal"
    )

    pk = stack.query("select id from lanes_lane where ref = ?", lane["ref"])[0][0]
    page = lane_admin_page(stack, pk)
    for name in files:
        assert name in page
    assert FULL_PACKET["developer_dot_md"] in page
    assert os.path.isdir(worktree_path)
