"""Request/reply to the worker over its Redis lists (lanes.worker.rpc_queue)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lanes.worker.rpc_queue import WorkerGone, rpc_call, rpc_key
from tests.support.stack import HOST, Stack, redis_argv, wait_for


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


# -- a worker that dies while a caller waits ------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path, settings: Any) -> Iterator[redis.Redis]:
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen(redis_argv(sock), stdout=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, timeout=10, what="redis socket")
        settings.REDIS_URL = f"unix://{sock}"
        yield redis.Redis(unix_socket_path=str(sock))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_it_withdraws_a_command_no_worker_took_when_the_worker_dies(
    private_redis: redis.Redis,
) -> None:
    started = time.monotonic()
    with pytest.raises(WorkerGone) as gone:
        rpc_call("gone", {"type": "appserver.status"}, 30, alive=lambda: False)
    assert gone.value.taken is False
    assert time.monotonic() - started < 10  # not the 30 s timeout
    assert private_redis.llen(rpc_key("gone")) == 0  # it can never run late


def test_it_says_when_a_dead_worker_had_taken_the_command(
    private_redis: redis.Redis,
) -> None:
    taken = threading.Event()

    def worker_that_dies() -> None:
        private_redis.blpop([rpc_key("dying")], timeout=10)
        taken.set()

    thread = threading.Thread(target=worker_that_dies)
    thread.start()
    with pytest.raises(WorkerGone) as gone:
        rpc_call(
            "dying",
            {"type": "appserver.status"},
            30,
            alive=lambda: not taken.is_set(),
        )
    thread.join(timeout=10)
    assert gone.value.taken is True
