"""`watch`: the bounded op, `watch --follow`, and the websocket end to end.

The op tests run in-process on the test DB. The stack tests start redis,
the worker and daphne, on the fake app-server and (e2e) on the real codex
against the mock Responses server, and compare what a websocket watcher
received with the DB journal: every event exactly once, in order, also
across a SIGKILL of the worker in the middle of a turn.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import execute
from dispatchsite.surfaces.cli import main as cli_main
from dispatchsite.surfaces.commands.follow import close_error, events_url
from lanes.journal.writer import SeqCounter, journal_write_batch
from lanes.models import Lane
from lanes.services import lane_register
from lanes.tokens import api_token_create
from tests.support.stack import FRAME_KEYS, REPO, Stack, pid_alive, wait_for
from tests.support.ws import events_of

SLOW = "[[slow:0.3]]"  # 20 deltas 0.3 s apart, on either backend


# -- the bounded op (in-process) ---------------------------------------------------


@pytest.fixture
def alpha(db: None) -> Lane:
    return lane_register(
        thread_id="thread-alpha",
        title="alpha",
        source="own",
        cwd="/tmp",
        host="testhost",
    )


def record(lane: Lane, count: int, counter: SeqCounter) -> None:
    messages = [
        {
            "method": "item/agentMessage/delta",
            "params": {"threadId": lane.thread_id, "turnId": "t1", "delta": str(n)},
        }
        for n in range(count)
    ]
    journal_write_batch(messages, counter)


def watch(**params: Any) -> dict[str, Any]:
    return execute("watch", params, Origin(surface="test"))


def test_it_pages_the_journal_with_after(alpha: Lane) -> None:
    record(alpha, 5, SeqCounter())
    first = watch(lane="@alpha", after=0, limit=2)
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert first["events"][0] == {
        "seq": 1,
        "method": "item/agentMessage/delta",
        "params": {"threadId": "thread-alpha", "turnId": "t1", "delta": "0"},
        "request_id": None,
    }
    assert first["last_seq"] == 2 and first["timed_out"] is False
    assert first["lane"] == "thread-alpha" and first["handle"] == "@alpha"
    rest = watch(lane="@alpha", after=first["last_seq"], limit=20, timeout=5)
    assert [e["seq"] for e in rest["events"]] == [3, 4, 5]
    assert rest["timed_out"] is False  # returned at once, without waiting


def test_it_returns_at_once_with_timeout_zero(alpha: Lane) -> None:
    record(alpha, 3, SeqCounter())
    started = time.monotonic()
    out = watch(lane=alpha.ref, timeout=0)
    assert time.monotonic() - started < 1
    assert out["events"] == [] and out["timed_out"] is True and out["last_seq"] == 3
    caught_up = watch(lane=alpha.ref, after=3, timeout=0)
    assert caught_up["events"] == [] and caught_up["timed_out"] is True


def test_it_samples_only_events_arriving_during_the_call(
    alpha: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = SeqCounter()
    record(alpha, 4, counter)  # history: not part of the sample
    ticks = iter([2, 0, 3])

    def sleep_while_events_arrive(seconds: float) -> None:
        record(alpha, next(ticks, 0), counter)

    monkeypatch.setattr("lanes.journal.reader.time.sleep", sleep_while_events_arrive)
    out = watch(lane=alpha.ref, limit=4, timeout=5)
    assert [e["seq"] for e in out["events"]] == [5, 6, 7, 8]
    assert out["timed_out"] is False and out["last_seq"] == 8


def test_it_times_out_with_what_arrived(
    alpha: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lanes.journal.reader.POLL_SECONDS", 0.02)
    out = watch(lane=alpha.ref, limit=5, timeout=0.1)
    assert out["events"] == [] and out["timed_out"] is True and out["last_seq"] == 0


def test_it_validates_the_bounds(alpha: Lane) -> None:
    from dispatchsite.core.errors import ValidationError

    for bad in ({"timeout": 26}, {"timeout": -1}, {"limit": 0}, {"after": -1}):
        with pytest.raises(ValidationError):
            watch(lane=alpha.ref, **bad)


def test_it_serves_watch_over_rest(alpha: Lane) -> None:
    record(alpha, 3, SeqCounter())
    raw = api_token_create(name="watch-rest")[1]
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    response = api.get(f"/api/v1/lanes/{alpha.ref}/watch?after=1&limit=5&timeout=0")
    assert response.status_code == 200, response.content
    assert [e["seq"] for e in response.json()["events"]] == [2, 3]


def test_it_runs_watch_from_the_cli(
    alpha: Lane, capsys: pytest.CaptureFixture[str]
) -> None:
    record(alpha, 3, SeqCounter())
    assert cli_main(["watch", "@alpha", "--after", "1", "--limit", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["seq"] for e in out["events"]] == [2] and out["last_seq"] == 2


def test_it_refuses_also_without_follow(
    alpha: Lane, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["watch", "@alpha", "--also", "@beta"]) == 2
    error = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert "--also only applies to `dispatch watch --follow`" in error["message"]


def test_it_builds_one_stream_url_for_one_or_many_lanes() -> None:
    assert events_url("http://h:1", [("t-1", "7")]) == (
        "ws://h:1/ws/lanes/t-1/events?after=7"
    )
    assert events_url("https://h/x/", [("t-1", "7"), ("t-2", "0")]) == (
        "wss://h/x/ws/events?lane=t-1&after=7&lane=t-2&after=0"
    )


def test_it_names_the_close_reason_beside_the_code_when_refused() -> None:
    scoped = close_error(4403, ["@beta"], "a lane is outside this token's scope")
    assert scoped is not None and scoped.code == "authority"
    assert "(close 4403: a lane is outside this token's scope)" in scoped.message
    revoked = close_error(4401, ["@alpha"], "token revoked or expired")
    assert revoked is not None and revoked.code == "unauthorized"
    assert "(close 4401: token revoked or expired)" in revoked.message
    # Anything else (a restart, an internal error) reconnects.
    assert close_error(1011, ["@alpha"], "internal error; see the web log") is None


def test_it_rejects_sample_flags_with_follow(
    alpha: Lane, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["watch", "@alpha", "--follow", "--limit", "3"]) == 2
    error = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert "--limit does not apply" in error["message"]


# -- the stack: websocket and --follow ------------------------------------------


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack(web=True)


class Watcher:
    """A websocket client in a thread; connected means subscribed."""

    def __init__(self, stack: Stack, path: str, *, token: str) -> None:
        from websockets.sync.client import connect

        assert stack.web_url
        url = stack.web_url.replace("http://", "ws://")
        self.socket = connect(
            url + path,
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=None,
            proxy=None,
        ).__enter__()  # closed in close()
        self.frames: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for raw in self.socket:
                self.frames.extend(events_of(raw))
        except ConnectionClosed:
            pass

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames]

    def close(self) -> None:
        self.socket.close()
        self.thread.join(timeout=5)


def journal_after(stack: Stack, thread_id: str, after: int) -> list[tuple[int, str]]:
    return [(seq, method) for seq, method in stack.events(thread_id) if seq > after]


def assert_watcher_matches_journal(
    stack: Stack, watcher: Watcher, thread_id: str, after: int
) -> list[tuple[int, str]]:
    """Wait for the watcher to catch up, then compare it with the journal."""

    def got() -> list[tuple[int, str]]:
        return [
            (f["seq"], f["method"])
            for f in list(watcher.frames)
            if f["thread_id"] == thread_id
        ]

    wait_for(
        lambda: (
            (rows := journal_after(stack, thread_id, after)) and len(got()) >= len(rows)
        ),
        timeout=15,
        what="the watcher to catch up with the journal",
    )
    time.sleep(0.3)  # anything extra (a duplicate) would arrive by now
    journal = journal_after(stack, thread_id, after)
    assert got() == journal, "watcher and journal differ"
    return journal


def mid_turn(stack: Stack, thread_id: str, after: int, deltas: int) -> None:
    wait_for(
        lambda: (
            sum(
                m == "item/agentMessage/delta"
                for _s, m in journal_after(stack, thread_id, after)
            )
            >= deltas
        ),
        timeout=30,
        what=f"{deltas} deltas of the slow turn",
    )


def test_it_streams_a_turn_to_a_watcher_that_joins_mid_turn(stack: Stack) -> None:
    token = stack.cli_ok("token", "create", "watcher")["token"]
    lane = stack.cli_ok("new", "--name", "mid", "--text", "warm up")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    before = stack.events(lane["id"])[-1][0]
    stack.cli_ok("send", lane["ref"], f"{SLOW} a slow one")
    mid_turn(stack, lane["id"], before, deltas=3)
    watcher = Watcher(
        stack, f"/ws/lanes/{lane['ref']}/events?after={before}", token=token
    )
    try:
        stack.wait_lane(
            lane["id"],
            lambda r: (
                r["latest_turn_status"] == "completed" and r["latest_turn_id"] != ""
            ),
            timeout=30,
        )
        journal = assert_watcher_matches_journal(stack, watcher, lane["id"], before)
    finally:
        watcher.close()
    methods = [m for _s, m in journal]
    assert methods.count("turn/started") == 1 and methods[-1] == "turn/completed"
    assert methods.count("item/agentMessage/delta") >= 10


def test_it_streams_every_event_once_across_a_worker_kill(stack: Stack) -> None:
    token = stack.cli_ok("token", "create", "watcher")["token"]
    lane = stack.cli_ok("new", "--name", "kill", "--text", "warm up")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    before = stack.events(lane["id"])[-1][0]
    stack.cli_ok("send", lane["ref"], f"{SLOW} to be cut short")
    mid_turn(stack, lane["id"], before, deltas=2)
    watcher = Watcher(
        stack, f"/ws/lanes/{lane['ref']}/events?after={before}", token=token
    )
    try:
        mid_turn(stack, lane["id"], before, deltas=5)
        app_server = stack.worker_state()["app_server_pid"]
        stack.kill("worker", signal.SIGKILL)
        wait_for(
            lambda: not pid_alive(app_server),
            timeout=10,
            what="the orphaned app-server to exit",
        )
        stack.start_worker()
        row = stack.wait_lane(lane["id"], lambda r: r["status"] == "idle", timeout=20)
        assert row["latest_turn_status"] == "interrupted"
        cut = assert_watcher_matches_journal(stack, watcher, lane["id"], before)
        # Cut short: the worker journals the turn's end once, as interrupted,
        # and the socket gets it like any other event.
        assert [m for _s, m in cut].count("turn/completed") == 1
        assert (
            stack.cli_ok("get", lane["ref"])["latest_turn"]["status"] == "interrupted"
        )
        stack.cli_ok("send", lane["ref"], "after the crash")
        stack.wait_lane(
            lane["id"], lambda r: r["latest_turn_status"] == "completed", timeout=30
        )
        journal = assert_watcher_matches_journal(stack, watcher, lane["id"], before)
    finally:
        watcher.close()
    after_crash = [m for s, m in journal if s > cut[-1][0]]
    assert "turn/started" in after_crash and after_crash[-1] == "turn/completed"


def test_it_streams_two_busy_lanes_over_one_socket(stack: Stack) -> None:
    token = stack.cli_ok("token", "create", "watcher")["token"]
    one = stack.cli_ok("new", "--name", "one", "--text", f"{SLOW} first")
    two = stack.cli_ok("new", "--name", "two", "--text", f"{SLOW} second")
    mid_turn(stack, one["id"], 0, deltas=2)
    watcher = Watcher(
        stack, f"/ws/events?lane={one['ref']}&lane=@two&after=0", token=token
    )
    try:
        for lane in (one, two):
            stack.wait_lane(
                lane["id"], lambda r: r["latest_turn_status"] == "completed", timeout=30
            )
            journal = assert_watcher_matches_journal(stack, watcher, lane["id"], 0)
            assert [m for _s, m in journal].count("item/agentMessage/delta") >= 10
    finally:
        watcher.close()
    assert {f["thread_id"] for f in watcher.frames} == {one["id"], two["id"]}


class FollowProcess:
    """`dispatch watch ... --follow` as a child process, read line by line."""

    def __init__(self, stack: Stack, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatchsite.cli", "watch", *args],
            env={**stack.env, "DISPATCH_URL": str(stack.web_url)},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def read_until(self, thread_id: str, turns: int) -> None:
        """Read until `turns` turns of the thread have completed."""
        out, err = self.proc.stdout, self.proc.stderr
        assert out is not None and err is not None

        def completed() -> int:
            methods = [f["method"] for f in self.lines if f["thread_id"] == thread_id]
            return methods.count("turn/completed")

        while completed() < turns:
            line = out.readline()
            assert line, err.read()
            self.lines.append(json.loads(line))

    def seqs(self, thread_id: str) -> list[int]:
        return [f["seq"] for f in self.lines if f["thread_id"] == thread_id]

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def test_it_follows_a_lane_from_the_cli_until_ctrl_c(tmp_path: Path) -> None:
    stack = Stack(tmp_path, codex="fake")
    try:
        stack.start(web=True)
        lane = stack.cli_ok("new", "--name", "follow", "--text", "first")
        stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
        follow = FollowProcess(stack, lane["ref"], "--follow", "--after", "0")
        try:
            follow.read_until(lane["id"], 1)  # replayed
            stack.cli_ok("send", lane["ref"], "second")
            follow.read_until(lane["id"], 2)  # live
            status = follow.interrupt()
        finally:
            follow.close()
        assert status == 0
        assert follow.proc.stderr is not None and follow.proc.stderr.read() == ""
        assert follow.seqs(lane["id"]) == [s for s, _m in stack.events(lane["id"])]
        assert set(follow.lines[0]) == FRAME_KEYS
    finally:
        stack.stop()


def test_it_follows_two_lanes_from_the_cli_across_a_web_restart(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, codex="fake")
    try:
        stack.start(web=True)
        one = stack.cli_ok("new", "--name", "one", "--text", "first")
        two = stack.cli_ok("new", "--name", "two", "--text", "first")
        for lane in (one, two):
            stack.wait_lane(lane["id"], lambda r: r["status"] == "idle")
        two_start = stack.events(two["id"])[-1][0]
        assert stack.web_url
        port = int(stack.web_url.rsplit(":", 1)[1])
        # No --after: each lane from the current end of its journal.
        follow = FollowProcess(stack, "@one", "--follow", "--also", two["ref"])
        try:
            # A slow turn: it is still running once the follower is connected.
            stack.cli_ok("send", "@one", f"{SLOW} second")
            follow.read_until(one["id"], 1)  # streaming
            # Lane two has printed nothing yet when the web goes away.
            stack.kill("web", signal.SIGKILL)
            stack.cli_ok("send", "@two", "while the web is down")
            stack.wait_lane(two["id"], lambda r: r["latest_turn_status"] == "completed")
            stack.start_web(port=port)
            follow.read_until(two["id"], 1)  # resumed from its start
            stack.cli_ok("send", "@one", "after the restart")
            follow.read_until(one["id"], 2)
            status = follow.interrupt()
        finally:
            follow.close()
        assert status == 0
        # Lane one: from wherever the follower joined the slow turn, all of it.
        printed = follow.seqs(one["id"])
        assert printed == [s for s, _m in stack.events(one["id"]) if s >= printed[0]]
        # Lane two: everything after its start, including the outage.
        journal = [s for s, _m in stack.events(two["id"]) if s > two_start]
        assert follow.seqs(two["id"]) == journal
    finally:
        stack.stop()


def stalled_client(stack: Stack, path: str, token: str) -> socket.socket:
    """A websocket client that completes the handshake, then never reads."""
    assert stack.web_url
    host, port = stack.web_url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    client.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += client.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return client


def closed_by_server(client: socket.socket, timeout: float) -> bool:
    """Drain what arrived; True once the server has closed the connection."""
    client.settimeout(timeout)
    try:
        while client.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_it_drops_a_client_that_stops_reading(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        codex="fake",
        extra_env={"DISPATCH_WS_PING_INTERVAL": "1", "DISPATCH_WS_PING_TIMEOUT": "1"},
    )
    try:
        stack.start(web=True)
        token = stack.cli_ok("token", "create", "watcher")["token"]
        lane = stack.cli_ok("new", "--name", "stall", "--text", "first")
        stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
        path = f"/ws/lanes/{lane['ref']}/events?after=0"
        reader = Watcher(stack, path, token=token)  # answers pings
        stalled = stalled_client(stack, path, token)
        try:
            time.sleep(4)  # two ping rounds unanswered
            assert closed_by_server(stalled, timeout=5)
            # The client that reads is still there and still served.
            stack.cli_ok("send", lane["ref"], "second")
            stack.wait_lane(
                lane["id"], lambda r: r["latest_turn_status"] == "completed"
            )
            journal = assert_watcher_matches_journal(stack, reader, lane["id"], 0)
            assert [m for _s, m in journal].count("turn/completed") == 2
        finally:
            stalled.close()
            reader.close()
    finally:
        stack.stop()
