"""User mistakes answered as such by a running stack, on the fake and the real
codex: a malformed or unknown thread id is 400/404 (exit 2/4), never the
app-server's 502 (exit 8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.stack import Stack

UNKNOWN = "019a0000-0000-7000-8000-000000000000"


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def test_it_answers_thread_id_mistakes_as_the_users(stack: Stack) -> None:
    # codex 0.169 says "thread not loaded: <id>" for an id it has never seen.
    unknown = stack.cli("attach", UNKNOWN)
    assert unknown.status == 4, unknown
    assert unknown.error["code"] == "not_found"
    assert "no lane registered" in unknown.error["message"]

    malformed = stack.cli("attach", "0")
    assert malformed.status == 2, malformed
    assert "UUID" in malformed.error["message"]

    for argv in (["restore", "0"], ["archive", "0", "--yes"]):
        refused = stack.cli(*argv)
        assert refused.status == 4, refused
        assert "not a Codex thread id" in refused.error["message"]

    assert stack.cli_ok("list")["lanes"] == []
