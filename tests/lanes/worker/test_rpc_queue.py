"""Request/reply to the worker over its Redis lists (lanes.worker.rpc_queue)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis

from lanes.worker.rpc_queue import rpc_key
from tests.support.stack import HOST, Stack


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def test_it_drops_a_command_whose_caller_gave_up_and_answers_the_next(
    stack: Stack,
) -> None:
    lane = stack.cli_ok("new", "--name", "alpha", "--no-send")
    client = redis.Redis(unix_socket_path=str(stack.run_dir / "redis.sock"))
    # Queued while the worker was busy or down; its caller timed out long ago,
    # so starting the turn now would run a message nobody saw accepted.
    abandoned = {
        "type": "appserver.rpc",
        "method": "turn/start",
        "params": {
            "threadId": lane["id"],
            "input": [{"type": "text", "text": "abandoned"}],
        },
        "timeout": 5,
        "reply_key": "dispatch:reply:abandoned",
        "expires_at": time.time() - 60,
    }
    live = {
        "type": "appserver.status",
        "reply_key": "dispatch:reply:live",
        "expires_at": time.time() + 30,
    }
    client.rpush(rpc_key(HOST), json.dumps(abandoned), json.dumps(live))
    popped = client.blpop(["dispatch:reply:live"], timeout=20)
    assert popped is not None
    reply = json.loads(popped[1])
    assert reply["ok"] is True and reply["result"]["host"] == HOST
    assert client.llen("dispatch:reply:abandoned") == 0
    if stack.codex == "fake":
        assert stack.received("turn/start") == []
    row = stack.lane_row(lane["id"])
    assert row["latest_turn_id"] in (None, "")
    # The usual path still works after it.
    sent = stack.cli_ok("send", lane["ref"], "hello")
    assert sent["turn_id"]
