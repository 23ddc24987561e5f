"""`kill -9` of the web server or celery, and a Redis restart, under `dispatch up`.

Each fault lands mid-turn, against the fake and the real codex app-server
(mock Responses server). The supervisor brings the component back; a message
queued during the outage is delivered once it is over; a websocket client
that reconnects with `?after=<last seq>` ends with every event of the lane
exactly once; the turn completes and is journaled. A Redis restart does not
even cut the websocket: the web server says so in one warning line, no
traceback, and feeds the socket from the journal until Redis is back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mock_responses import MockResponsesServer
from tests.support.stack import Stack, wait_for
from tests.support.supervised import Supervised
from tests.support.ws import events_of

pytestmark = pytest.mark.timeout(300)

SLOW = "[[slow:0.3]]"  # 20 deltas 0.3 s apart, on either backend


class Reconnecting:
    """A websocket client that reconnects with `?after=<last seq>` when cut off."""

    def __init__(self, url: str, path: str, *, token: str, after: int) -> None:
        self.base = url.replace("http://", "ws://") + path
        self.token = token
        self.last = after
        self.frames: list[dict[str, Any]] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        assert self.connected.wait(30), "the websocket never connected"

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        while not self.stopping.is_set():
            try:
                with connect(
                    f"{self.base}?after={self.last}",
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    max_size=None,
                    proxy=None,
                    open_timeout=5,
                ) as socket:
                    self.connections += 1
                    self.connected.set()
                    while not self.stopping.is_set():
                        try:
                            raw = socket.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        for frame in events_of(raw):
                            self.frames.append(frame)
                            self.last = max(self.last, int(frame["seq"]))
            except (ConnectionClosed, OSError):
                time.sleep(0.2)  # the web server is restarting

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.e2e)])
def supervised(
    request: pytest.FixtureRequest, tmp_path: Path, mock: MockResponsesServer
) -> Iterator[Supervised]:
    if request.param == "real":
        from tests.support.codex_env import codex_binary

        if codex_binary() is None:
            pytest.skip("codex binary not installed")
    running = Supervised(
        Stack(tmp_path, codex=request.param, mock_base_url=mock.base_url)
    )
    try:
        yield running
    finally:
        running.down()


def deltas_after(stack: Stack, thread_id: str, after: int) -> int:
    return sum(
        method == "item/agentMessage/delta"
        for seq, method in stack.events(thread_id)
        if seq > after
    )


@pytest.mark.parametrize("component", ["web", "celery", "redis"])
def test_it_survives_a_component_kill_mid_turn(
    supervised: Supervised, component: str
) -> None:
    stack = supervised.stack
    token = stack.cli_ok("token", "create", "watcher")["token"]
    lane = stack.cli_ok("new", "--name", "outage", "--text", "warm up")
    other = stack.cli_ok("new", "--name", "other", "--text", "warm up")
    for started in (lane, other):
        stack.wait_lane(started["id"], lambda r: r["latest_turn_status"] == "completed")
    before = stack.events(lane["id"])[-1][0]
    stack.cli_ok("send", lane["ref"], f"{SLOW} through the outage")
    watcher = Reconnecting(
        supervised.url,
        f"/ws/lanes/{lane['ref']}/events",
        token=token,
        after=before,
    )
    try:
        wait_for(
            lambda: deltas_after(stack, lane["id"], before) >= 3,
            timeout=60,
            what="the slow turn to stream",
        )
        cut = stack.lane_row(lane["id"])["active_turn_id"]
        assert cut
        outage: dict[str, Any] = {}

        def commands() -> None:
            # Sent at once after the kill: during the outage or just after
            # it. The queued one is written first and delivered when the
            # turn ends; the direct one starts its turn or fails clearly.
            outage["queued"] = stack.cli(
                "send", lane["ref"], "queued in the outage", "--queue"
            )
            outage["direct"] = stack.cli("send", other["ref"], "direct in the outage")

        supervised.kill(component, during=commands)
        queued = outage["queued"]
        assert queued.status == 0, queued.stderr
        direct = outage["direct"]
        if component == "redis":
            # The worker is unreachable: refused with a typed error naming the
            # fix, and the lane left as it was.
            assert direct.status == 8, direct.stderr
            assert direct.error["code"] == "app_server", direct.error
            assert "redis" in direct.error["message"].lower(), direct.error
            assert direct.error["hint"], direct.error
            row = stack.lane_row(other["id"])
            assert (row["status"], row["latest_turn_status"]) == ("idle", "completed")
        else:
            # The CLI reaches the worker through Redis, not the web server.
            assert direct.status == 0, direct.stderr
            stack.wait_lane(
                other["id"],
                lambda r: (
                    r["latest_turn_id"] == direct.json["turn_id"]
                    and r["latest_turn_status"] == "completed"
                ),
                timeout=90,
                what="the direct send to complete",
            )
        if component == "redis":
            # The web's journal subscription is back (a restarted Redis forgets
            # groups); else sockets would fall back to the 3 s reconcile poll.
            wait_for(
                supervised.journal_subscribers,
                timeout=30,
                what="the hub to resubscribe",
            )
        # And the worker's request/reply loop serves again.
        again = stack.cli_ok("send", other["ref"], "after the outage")
        stack.wait_lane(
            other["id"],
            lambda r: (
                r["latest_turn_id"] == again["turn_id"]
                and r["latest_turn_status"] == "completed"
            ),
            timeout=90,
            what="a send after the outage to complete",
        )

        def delivered() -> list[tuple[str, str]]:
            return stack.query(
                "select status, turn_id from lanes_queuedmessage where text = ?",
                "queued in the outage",
            )

        wait_for(
            lambda: [s for s, _t in delivered()] == ["sent"],
            timeout=90,
            what="the queued message to be delivered",
        )
        (_status, queued_turn) = delivered()[0]
        stack.wait_lane(
            lane["id"],
            lambda r: (
                r["latest_turn_id"] == queued_turn
                and r["latest_turn_status"] == "completed"
            ),
            timeout=90,
            what="the queued turn to complete",
        )
        journal = [(s, m) for s, m in stack.events(lane["id"]) if s > before]
        wait_for(
            lambda: watcher.last >= journal[-1][0],
            timeout=30,
            what="the websocket client to catch up",
        )
        time.sleep(0.5)  # a duplicate would arrive by now
    finally:
        watcher.close()
    got = [(f["seq"], f["method"]) for f in watcher.frames]
    assert got == journal, "the websocket client saw a gap or a repeat"
    seqs = [s for s, _m in stack.events(lane["id"])]
    assert seqs == list(range(1, len(seqs) + 1))
    # The cut turn completed (not interrupted) and is journaled once.
    ends = stack.query(
        "select params from lanes_laneevent where thread_id = ? and turn_id = ?"
        " and method = 'turn/completed'",
        lane["id"],
        cut,
    )
    assert [json.loads(p)["turn"]["status"] for (p,) in ends] == ["completed"]
    if component == "web":
        assert watcher.connections >= 2, "the websocket was never cut off"
    if component == "redis":
        assert watcher.connections == 1, "the Redis restart cut the websocket"
        web_log = (stack.home / "logs" / "web.log").read_text(errors="replace")
        assert "Traceback" not in web_log, web_log[-3000:]
        lost = [line for line in web_log.splitlines() if "lost the journal bus" in line]
        assert len(lost) == 1, web_log[-3000:]
    status = stack.cli_ok("daemon", "status")["daemon"]
    assert status["components"][component]["restarts"] >= 1
    assert {c["status"] for c in status["components"].values()} == {"up"}
