"""AppServerClient against tests/fakes/fake_appserver.py (and, marked e2e, codex)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from lanes.appserver.binary import CodexConfigError, codex_version, preflight_config
from lanes.appserver.client import AppServerClient
from lanes.appserver.errors import (
    AppServerClosed,
    AppServerStartError,
    AppServerTimeout,
    RpcError,
)
from tests.support.codex_env import codex_binary, codex_env, write_codex_home

FAKE = Path(__file__).resolve().parents[2] / "fakes" / "fake_appserver.py"
FAKE_ARGV = [sys.executable, str(FAKE), "app-server"]

Message = dict[str, Any]
ClientFactory = Callable[..., Awaitable[AppServerClient]]


class Recorder:
    """Collects notifications and lets a test wait for a particular one."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._arrived.set()

    def methods(self) -> list[str]:
        return [m["method"] for m in self.messages]

    async def wait_for(
        self,
        method: str,
        where: Callable[[Message], bool] = lambda params: True,
        timeout: float = 5.0,
    ) -> Message:
        async def scan() -> Message:
            while True:
                self._arrived.clear()
                for message in self.messages:
                    if message["method"] == method and where(message["params"]):
                        return message["params"]
                await self._arrived.wait()

        return await asyncio.wait_for(scan(), timeout)


def assert_process_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def live_group_members(pgid: int) -> list[int]:
    """Pids in a process group, ignoring zombies nobody has reaped yet."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "codex-home"
    home.mkdir()
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("FAKE_APPSERVER_")]:
        del env[key]
    env.update(CODEX_HOME=str(home), FAKE_APPSERVER_LOG=str(tmp_path / "fake.log"))
    return env


@pytest_asyncio.fixture
async def make_client(fake_env: dict[str, str]) -> AsyncIterator[ClientFactory]:
    clients: list[AppServerClient] = []

    async def make(
        mode: str = "normal",
        *,
        start: bool = True,
        turn_delay: float = 0.0,
        extra_env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> AppServerClient:
        env = dict(fake_env, FAKE_APPSERVER_MODE=mode)
        env["FAKE_APPSERVER_TURN_DELAY"] = str(turn_delay)
        env.update(extra_env or {})
        client = AppServerClient(FAKE_ARGV, env=env, **kwargs)
        clients.append(client)
        if start:
            await client.start(timeout=10)
        return client

    yield make
    for client in clients:
        await client.close()


async def start_turn(client: AppServerClient, text: str) -> tuple[str, str]:
    thread = (await client.request("thread/start", {}))["thread"]
    params = {"threadId": thread["id"], "input": [{"type": "text", "text": text}]}
    turn = (await client.request("turn/start", params))["turn"]
    return thread["id"], turn["id"]


def fake_log(fake_env: dict[str, str]) -> list[Message]:
    path = Path(fake_env["FAKE_APPSERVER_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.asyncio
async def test_it_completes_the_initialize_handshake(
    make_client: ClientFactory, fake_env: dict[str, str]
) -> None:
    client = await make_client(opt_out_notifications=["item/agentMessage/delta"])

    assert client.init_result is not None
    assert client.init_result["platformOs"] == "linux"
    assert client.user_agent is not None
    assert client.user_agent.startswith("dispatch/0.169.0 ")
    assert client.version == "0.169.0"
    assert client.is_running
    await client.request("account/read")  # the fake reads its input in order
    received = fake_log(fake_env)
    assert received[0]["method"] == "initialize"
    assert received[0]["params"] == {
        "clientInfo": {"name": "dispatch", "version": "0.1.0"},
        "capabilities": {
            "experimentalApi": True,
            "optOutNotificationMethods": ["item/agentMessage/delta"],
        },
    }
    assert received[1] == {"method": "initialized"}


@pytest.mark.asyncio
async def test_it_returns_results_and_increments_ids(
    make_client: ClientFactory, fake_env: dict[str, str]
) -> None:
    client = await make_client()

    started = await client.request("thread/start", {"cwd": "/tmp"})
    models = await client.request("model/list")
    loaded = await client.request("thread/loaded/list")

    assert started["thread"]["cwd"] == "/tmp"
    assert models["data"][0]["id"] == "mock-model"
    assert loaded["data"] == [started["thread"]["id"]]
    requests = [m for m in fake_log(fake_env) if "id" in m]
    ids = [m["id"] for m in requests]
    assert ids == sorted(set(ids))
    # 0.169 rejects requests without params, so {} is always sent.
    assert all("params" in m for m in requests)


@pytest.mark.asyncio
async def test_it_raises_rpc_errors_with_code_and_message(
    make_client: ClientFactory,
) -> None:
    client = await make_client()

    with pytest.raises(RpcError) as caught:
        await client.request("no/such/method")
    with pytest.raises(RpcError, match="no active turn to steer"):
        await client.request(
            "turn/steer", {"threadId": "x", "expectedTurnId": "y", "input": []}
        )

    assert caught.value.rpc_code == -32600
    assert "unknown variant `no/such/method`" in caught.value.message
    assert caught.value.code == "app_server"
    assert caught.value.as_dict()["error"]["data"]["rpc_code"] == -32600


@pytest.mark.asyncio
async def test_it_routes_turn_notifications_in_order(
    make_client: ClientFactory,
) -> None:
    recorder = Recorder()
    client = await make_client(on_notification=recorder)

    thread_id, turn_id = await start_turn(client, "hello there")
    completed = await recorder.wait_for("turn/completed")

    turn_methods = [
        m
        for m in recorder.methods()
        if m not in ("remoteControl/status/changed", "thread/started")
    ]
    assert turn_methods == [
        "thread/status/changed",
        "turn/started",
        "item/started",
        "item/completed",
        "item/started",
        *["item/agentMessage/delta"] * 4,
        "item/completed",
        "thread/tokenUsage/updated",
        "thread/status/changed",
        "turn/completed",
    ]
    assert completed["turn"]["id"] == turn_id
    assert completed["turn"]["status"] == "completed"
    final = completed["turn"]["items"][0]
    assert final["text"] == "fake reply #1 to: hello there"
    assert all(
        m["params"]["threadId"] == thread_id
        for m in recorder.messages
        if m["method"].startswith(("turn/", "item/"))
    )


@pytest.mark.asyncio
async def test_it_accepts_a_plain_function_as_notification_handler(
    make_client: ClientFactory,
) -> None:
    seen: list[str] = []
    client = await make_client(on_notification=lambda m: seen.append(m["method"]))

    await client.request("fake/emit", {"method": "custom/ping", "params": {}})
    await client.request("account/read")  # the notification precedes this answer

    await asyncio.sleep(0.05)
    assert "custom/ping" in seen


@pytest.mark.asyncio
async def test_it_survives_a_failing_notification_handler(
    make_client: ClientFactory,
) -> None:
    async def explode(message: Message) -> None:
        raise RuntimeError("handler bug")

    client = await make_client(on_notification=explode)

    await start_turn(client, "still works")
    result = await client.request("account/read")

    assert result == {"account": None, "requiresOpenaiAuth": False}


@pytest.mark.asyncio
async def test_it_lets_a_notification_handler_make_requests(
    make_client: ClientFactory,
) -> None:
    holder: dict[str, AppServerClient] = {}
    reads: asyncio.Queue[Message] = asyncio.Queue()

    async def on_notification(message: Message) -> None:
        if message["method"] == "turn/completed":
            thread_id = message["params"]["threadId"]
            read = await holder["client"].request(
                "thread/read", {"threadId": thread_id, "includeTurns": False}
            )
            await reads.put(read)

    holder["client"] = await make_client(on_notification=on_notification)
    thread_id, _ = await start_turn(holder["client"], "hi")

    read = await asyncio.wait_for(reads.get(), 5)
    assert read["thread"]["id"] == thread_id


@pytest.mark.asyncio
async def test_it_answers_approval_server_requests(
    make_client: ClientFactory,
) -> None:
    recorder = Recorder()
    asked: list[Message] = []

    async def approve(request: Message) -> Message:
        asked.append(request)
        return {"decision": "accept"}

    client = await make_client(
        "approval", on_notification=recorder, on_server_request=approve
    )
    thread_id, _ = await start_turn(client, "run something")
    completed = await recorder.wait_for("turn/completed")

    assert asked[0]["method"] == "item/commandExecution/requestApproval"
    assert asked[0]["params"]["threadId"] == thread_id
    waiting = await recorder.wait_for(
        "thread/status/changed",
        lambda p: p["status"].get("activeFlags") == ["waitingOnApproval"],
    )
    assert waiting["threadId"] == thread_id
    resolved = await recorder.wait_for("serverRequest/resolved")
    assert resolved["requestId"] == asked[0]["id"]
    command = await recorder.wait_for(
        "item/completed", lambda p: p["item"]["type"] == "commandExecution"
    )
    assert command["item"]["status"] == "completed"
    assert completed["turn"]["status"] == "completed"


@pytest.mark.asyncio
async def test_it_answers_with_an_error_when_the_server_request_handler_raises(
    make_client: ClientFactory,
) -> None:
    async def broken(request: Message) -> Message:
        raise ValueError("no approver configured")

    client = await make_client(on_server_request=broken)

    reply = await client.request(
        "fake/serverRequest", {"method": "item/tool/call", "params": {"x": 1}}
    )

    assert "result" not in reply
    assert reply["error"]["code"] == -32603
    assert "no approver configured" in reply["error"]["message"]


@pytest.mark.asyncio
async def test_it_answers_with_an_error_when_there_is_no_server_request_handler(
    make_client: ClientFactory,
) -> None:
    client = await make_client()

    reply = await client.request(
        "fake/serverRequest", {"method": "currentTime/read", "params": {}}
    )

    assert reply["error"]["code"] == -32601
    assert "currentTime/read" in reply["error"]["message"]


@pytest.mark.asyncio
async def test_it_keeps_reading_while_a_server_request_is_being_answered(
    make_client: ClientFactory,
) -> None:
    release = asyncio.Event()

    async def slow_approver(request: Message) -> Message:
        await release.wait()
        return {"answer": request["params"]["n"]}

    client = await make_client(on_server_request=slow_approver)
    pending = asyncio.ensure_future(
        client.request("fake/serverRequest", {"method": "ask", "params": {"n": 7}})
    )

    assert (await client.request("account/read"))["requiresOpenaiAuth"] is False
    release.set()
    assert await pending == {"result": {"answer": 7}}


@pytest.mark.asyncio
async def test_it_times_out_a_slow_request_and_stays_usable(
    make_client: ClientFactory,
) -> None:
    client = await make_client()

    with pytest.raises(AppServerTimeout, match="fake/sleep"):
        await client.request("fake/sleep", {"seconds": 2}, timeout=0.2)

    assert (await client.request("account/read"))["account"] is None


@pytest.mark.asyncio
async def test_it_fails_in_flight_requests_promptly_when_the_server_dies(
    make_client: ClientFactory,
) -> None:
    client = await make_client("crash_on_turn", turn_delay=0.3)
    await start_turn(client, "this turn kills the server")

    began = time.monotonic()
    with pytest.raises(AppServerClosed, match="exit 1"):
        await client.request("fake/sleep", {"seconds": 30}, timeout=20)
    assert time.monotonic() - began < 3

    assert not client.is_running
    with pytest.raises(AppServerClosed):
        await client.request("account/read")
    await client.wait_closed()
    assert client.returncode == 1
    assert "crashing in the middle of a turn" in client.stderr_excerpt()


@pytest.mark.asyncio
async def test_it_notices_a_crash_even_if_a_grandchild_holds_stdout_open(
    fake_env: dict[str, str],
) -> None:
    # Like a command codex started and left running: it inherits the pipes.
    script = f"sleep 30 & exec {sys.executable} {FAKE} app-server"
    env = dict(fake_env, FAKE_APPSERVER_MODE="crash_on_turn")
    env["FAKE_APPSERVER_TURN_DELAY"] = "0.2"
    client = AppServerClient(["sh", "-c", script], env=env)
    await client.start(timeout=10)
    try:
        await start_turn(client, "crash while sleep holds the pipe")
        began = time.monotonic()
        with pytest.raises(AppServerClosed):
            await client.request("fake/sleep", {"seconds": 30}, timeout=20)
        assert time.monotonic() - began < 3
        await asyncio.wait_for(client.wait_closed(), 3)
    finally:
        await client.close()
    assert client.pid is not None
    # The sleep went with it (SIGKILL lands asynchronously, hence the retry).
    for _ in range(50):
        if not live_group_members(client.pid):
            break
        await asyncio.sleep(0.02)
    assert live_group_members(client.pid) == []


@pytest.mark.asyncio
async def test_it_reports_a_server_that_dies_after_initialize(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    stderr_path = tmp_path / "logs" / "appserver.stderr"
    client = await make_client("crash_after_init", start=False, stderr_path=stderr_path)

    with pytest.raises(AppServerStartError) as caught:
        await client.start(timeout=5)

    assert "crashing right after initialize" in caught.value.message
    assert caught.value.data["returncode"] == 1
    assert "crashing right after initialize" in stderr_path.read_text()
    assert client.pid is not None
    assert_process_gone(client.pid)


@pytest.mark.asyncio
async def test_it_reports_an_executable_that_cannot_start(tmp_path: Path) -> None:
    client = AppServerClient([str(tmp_path / "no-such-codex"), "app-server"])

    with pytest.raises(AppServerStartError, match="cannot start"):
        await client.start()


@pytest.mark.asyncio
async def test_it_gives_up_on_a_hung_server_and_kills_it(
    make_client: ClientFactory,
) -> None:
    client = await make_client(
        "hang", start=False, extra_env={"FAKE_APPSERVER_IGNORE_SIGTERM": "1"}
    )

    began = time.monotonic()
    with pytest.raises(AppServerStartError, match="no answer to initialize"):
        await client.start(timeout=0.5)

    assert time.monotonic() - began < 5
    assert client.pid is not None
    assert_process_gone(client.pid)
    assert not client.is_running


@pytest.mark.asyncio
async def test_it_skips_garbage_lines(make_client: ClientFactory) -> None:
    recorder = Recorder()
    client = await make_client("garbage", on_notification=recorder)

    _, turn_id = await start_turn(client, "through the noise")
    completed = await recorder.wait_for("turn/completed")

    assert completed["turn"]["id"] == turn_id
    assert (await client.request("account/read"))["account"] is None


@pytest.mark.asyncio
async def test_it_treats_an_invalid_config_warning_as_fatal(
    make_client: ClientFactory, fake_env: dict[str, str]
) -> None:
    client = await make_client("invalid_config", start=False)

    with pytest.raises(CodexConfigError) as caught:
        await client.start(timeout=5)

    config_path = Path(fake_env["CODEX_HOME"]) / "config.toml"
    assert f"fix or remove {config_path}" in caught.value.message
    assert "\n" not in caught.value.message
    assert client.pid is not None
    assert_process_gone(client.pid)


@pytest.mark.asyncio
async def test_it_does_not_wait_out_the_config_window_on_a_healthy_server(
    make_client: ClientFactory,
) -> None:
    client = await make_client(start=False, config_warning_settle=5.0)

    began = time.monotonic()
    await client.start(timeout=10)

    # remoteControl/status/changed right after initialize ends the window.
    assert time.monotonic() - began < 2.5


@pytest.mark.asyncio
async def test_it_leaves_no_process_behind_after_close(
    make_client: ClientFactory,
) -> None:
    client = await make_client(turn_delay=0.2)
    await start_turn(client, "close me mid-turn")
    pid = client.pid
    assert pid is not None

    await client.close()
    await client.close()  # idempotent

    assert_process_gone(pid)
    assert not client.is_running
    assert client.returncode == 0  # stdin EOF is a clean shutdown
    with pytest.raises(AppServerClosed):
        await client.request("account/read")


@pytest.mark.asyncio
async def test_it_escalates_to_sigkill_when_the_server_ignores_eof_and_sigterm(
    make_client: ClientFactory,
) -> None:
    deaf = {"FAKE_APPSERVER_IGNORE_EOF": "1", "FAKE_APPSERVER_IGNORE_SIGTERM": "1"}
    client = await make_client(extra_env=deaf)
    pid = client.pid
    assert pid is not None

    began = time.monotonic()
    await client.close(timeout=0.3)

    assert time.monotonic() - began < 3
    assert_process_gone(pid)
    assert client.returncode == -9


@pytest.mark.asyncio
async def test_it_handles_lines_longer_than_64_kib(
    make_client: ClientFactory,
) -> None:
    recorder = Recorder()
    client = await make_client(on_notification=recorder)
    text = "x" * (300 * 1024)

    thread_id, _ = await start_turn(client, text)
    completed = await recorder.wait_for("turn/completed")
    await client.request("thread/name/set", {"threadId": thread_id, "name": text})
    read = await client.request("thread/read", {"threadId": thread_id})

    assert completed["turn"]["items"][0]["text"].endswith(text)
    assert read["thread"]["name"] == text


@pytest.mark.asyncio
async def test_it_lets_the_fake_steer_and_interrupt_slow_turns(
    make_client: ClientFactory,
) -> None:
    recorder = Recorder()
    client = await make_client(turn_delay=0.1, on_notification=recorder)
    thread_id, turn_id = await start_turn(client, "long one")
    await recorder.wait_for("item/agentMessage/delta")

    steered = await client.request(
        "turn/steer",
        {
            "threadId": thread_id,
            "expectedTurnId": turn_id,
            "input": [{"type": "text", "text": "STEER: shorter"}],
        },
    )
    with pytest.raises(RpcError, match="expected active turn id"):
        await client.request(
            "turn/steer",
            {"threadId": thread_id, "expectedTurnId": "nope", "input": []},
        )
    await recorder.wait_for(
        "item/started", lambda p: p["item"].get("id") == "msg_fake_2"
    )
    await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
    completed = await recorder.wait_for("turn/completed")

    assert steered == {"turnId": turn_id}
    assert completed["turn"]["status"] == "interrupted"
    completed_ids = [
        m["params"]["item"]["id"]
        for m in recorder.messages
        if m["method"] == "item/completed"
    ]
    assert "msg_fake_1" not in completed_ids  # preempted, like codex
    with pytest.raises(RpcError, match="no active turn to interrupt"):
        await client.request(
            "turn/interrupt", {"threadId": thread_id, "turnId": turn_id}
        )


@pytest.mark.asyncio
async def test_it_sees_goal_continuations_stop_at_the_token_budget(
    make_client: ClientFactory,
) -> None:
    recorder = Recorder()
    client = await make_client(on_notification=recorder)
    thread_id = (await client.request("thread/start", {}))["thread"]["id"]

    await client.request(
        "thread/goal/set",
        {"threadId": thread_id, "objective": "ship it", "tokenBudget": 330},
    )
    limited = await recorder.wait_for(
        "thread/goal/updated", lambda p: p["goal"]["status"] == "budgetLimited"
    )

    assert recorder.methods().count("turn/completed") == 3
    assert limited["goal"]["tokensUsed"] == 330


@pytest.mark.asyncio
async def test_it_resumes_a_thread_in_a_restarted_fake(
    make_client: ClientFactory,
) -> None:
    first = await make_client()
    recorder = Recorder()
    first.on_notification = recorder
    thread_id, _ = await start_turn(first, "remember me")
    await recorder.wait_for("turn/completed")
    await first.close()

    second = await make_client()
    listed = await second.request("thread/list", {})
    resumed = await second.request("thread/resume", {"threadId": thread_id})

    assert [t["id"] for t in listed["data"]] == [thread_id]
    assert listed["data"][0]["preview"] == "remember me"
    assert len(resumed["thread"]["turns"]) == 1
    assert thread_id in (await second.request("thread/loaded/list"))["data"]


# -- the real codex ---------------------------------------------------------

CODEX = codex_binary()


def unreachable_base_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.e2e
@pytest.mark.skipif(CODEX is None, reason="codex binary not found")
@pytest.mark.asyncio
async def test_it_initializes_the_real_codex(tmp_path: Path) -> None:
    assert CODEX is not None
    home = tmp_path / "codex-home"
    write_codex_home(home, base_url=unreachable_base_url(), catalog=False)
    client = AppServerClient(
        [CODEX, "app-server"],
        env=codex_env(home),
        stderr_path=tmp_path / "codex.stderr",
    )
    try:
        await client.start(timeout=15)
        account = await client.request("account/read", {"refreshToken": False})
        loaded = await client.request("thread/loaded/list")
    finally:
        await client.close()

    # The binary under test (CI also runs the newest published codex).
    assert client.version == codex_version([CODEX])
    assert account["requiresOpenaiAuth"] is False  # not fallen back to defaults
    assert loaded["data"] == []
    assert client.returncode == 0
    assert client.pid is not None
    assert_process_gone(client.pid)


@pytest.mark.e2e
@pytest.mark.skipif(CODEX is None, reason="codex binary not found")
@pytest.mark.asyncio
async def test_it_refuses_the_real_codex_with_a_corrupt_config(
    tmp_path: Path,
) -> None:
    assert CODEX is not None
    home = tmp_path / "codex-home"
    write_codex_home(home, base_url=unreachable_base_url(), catalog=False)
    config = home / "config.toml"
    config.write_text("model = \n" + config.read_text())
    client = AppServerClient([CODEX, "app-server"], env=codex_env(home))

    with pytest.raises(CodexConfigError) as live:
        await client.start(timeout=15)
    with pytest.raises(CodexConfigError) as preflight:
        preflight_config(CODEX, codex_env(home))

    for caught in (live, preflight):
        assert "string values must be quoted" in caught.value.message
        assert f"fix or remove {config}" in caught.value.message
        assert "\n" not in caught.value.message
    assert client.pid is not None
    assert_process_gone(client.pid)
