"""Triggers on the real stack: `dispatch up` (Redis, web, worker, celery with
beat), the real codex app-server and the mock Responses server.

One stack for the module, driven through the CLI and the webhook URL as users
do; the restart test runs last because it takes the stack down and up.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.codex_env import codex_binary
from tests.support.mock_responses import MockResponsesServer, last_user_text
from tests.support.stack import Stack, wait_for
from triggers.webhooks import signature

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    pytest.mark.skipif(codex_binary() is None, reason="codex binary not installed"),
]


class Live:
    def __init__(self, stack: Stack, mock: MockResponsesServer, url: str) -> None:
        self.stack, self.mock, self.url = stack, mock, url

    def cli(self, *args: str) -> Any:
        return self.stack.cli_ok(*args)

    def texts(self, prefix: str) -> list[tuple[float, str]]:
        found = []
        for record in self.mock.requests("/v1/responses"):
            text = last_user_text((record.get("body") or {}).get("input"))
            if text.startswith(prefix):
                found.append((record["time"], text))
        return found

    def firings(self, trigger_id: str) -> list[dict[str, Any]]:
        rows = self.stack.query(
            "select reason, outcome, detail, started_at, slot_at, turn_id "
            "from triggers_triggerfiring where trigger_id = ? order by id",
            trigger_id,
        )
        keys = ("reason", "outcome", "detail", "started_at", "slot_at", "turn_id")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def turn_window(self, thread_id: str, turn_id: str) -> tuple[str, str]:
        rows = dict(
            self.stack.query(
                "select method, received_at from lanes_laneevent where thread_id = ?"
                " and turn_id = ? and method in ('turn/started', 'turn/completed')",
                thread_id,
                turn_id,
            )
        )
        return rows["turn/started"], rows["turn/completed"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root: Path = tmp_path_factory.mktemp("trg")
    with MockResponsesServer() as mock:
        stack = Stack(root, codex="real", mock_base_url=mock.base_url)
        up = stack.cli("up", "--port", "0", timeout=120)
        assert up.status == 0, up.stderr
        try:
            yield Live(stack, mock, up.json["url"])
        finally:
            stack.cli("down", timeout=60)


def new_lane(live: Live, name: str) -> dict[str, Any]:
    return dict(live.cli("new", "--name", name, "--no-send"))


def idle(live: Live, ref: str) -> bool:
    state = live.stack.lane_state(ref)
    return bool(state["status"] == "idle" and not state["active_turn_id"])


def test_it_sends_into_b_when_a_completes_a_turn(live: Live) -> None:
    a, b = new_lane(live, "build"), new_lane(live, "review")
    trigger = live.cli(
        "trigger", "add", "--name", "supervise", "--lane", "@review",
        "--when", "turn_completed", "--on", "@build",
        "--action", "send", "--text", "review: build turn {{ turn.status }}",
    )  # fmt: skip
    assert trigger["on"] == a["ref"] and trigger["lane"] == b["ref"]
    live.cli("send", "@build", "compile everything")
    wait_for(
        lambda: live.texts("review: build turn completed"), timeout=60, what="B's turn"
    )
    fired = wait_for(
        lambda: [f for f in live.firings(trigger["id"]) if f["outcome"] == "fired"],
        timeout=30,
        what="the firing row",
    )
    assert len(fired) == 1 and fired[0]["reason"] == "event"
    wait_for(lambda: idle(live, b["ref"]), timeout=60, what="B idle")
    # B's own turn completing is no event for a trigger watching A.
    time.sleep(1.5)
    assert len(live.texts("review: build turn")) == 1
    log = live.cli("daemon", "log", "--limit", "50")["actions"]
    assert any(
        e["op"] == "trigger-fire" and e["trigger_id"] == trigger["id"] for e in log
    )


def post_hook(live: Live, trigger_id: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"{live.url}/api/v1/hooks/{trigger_id}",
        data=body,
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_it_fires_a_signed_webhook_once(live: Live) -> None:
    new_lane(live, "deploys")
    hook = live.cli(
        "trigger", "add", "--name", "deploy-hook", "--lane", "@deploys",
        "--when", "webhook", "--action", "send",
        "--text", "deployed {{ payload.version }}",
    )  # fmt: skip
    body = json.dumps({"version": "v7"}).encode()
    ts = str(int(time.time()))
    good = {
        "X-Dispatch-Timestamp": ts,
        "X-Dispatch-Signature": signature(hook["secret"], ts, body),
        "Idempotency-Key": "deploy-7",
    }
    bad = {**good, "X-Dispatch-Signature": signature("whsec_wrong", ts, body)}
    assert post_hook(live, hook["id"], body, {**bad, "Idempotency-Key": "x"}) == 401
    assert post_hook(live, hook["id"], body, good) == 202
    assert post_hook(live, hook["id"], body, good) == 409
    wait_for(lambda: live.texts("deployed v7"), timeout=60, what="the webhook turn")
    time.sleep(1.0)
    assert [t for _, t in live.texts("deployed")] == ["deployed v7"]
    assert [f["outcome"] for f in live.firings(hook["id"])] == ["fired"]


def test_it_ticks_only_while_idle_pauses_and_catches_up_once_after_restart(
    live: Live,
) -> None:
    lane = new_lane(live, "ticker")
    began = time.time()
    trigger = live.cli(
        "trigger", "add", "--name", "tick", "--lane", "@ticker",
        "--when", "interval", "--seconds", "2", "--idle-only",
        "--action", "send", "--text", "tick {{ slot }}",
    )  # fmt: skip
    wait_for(lambda: len(live.texts("tick")) >= 2, timeout=20, what="two ticks")
    assert live.texts("tick")[1][0] - began <= 10  # ~8 s, on a loaded machine
    # A slow turn (20 chunks, 0.25 s apart): the trigger must not send into it.
    wait_for(lambda: idle(live, lane["ref"]), timeout=30, what="lane idle")
    slow = live.stack.cli("send", "@ticker", "slow work [[slow:0.25]]")
    while slow.status != 0:  # a tick may have just started a turn
        wait_for(lambda: idle(live, lane["ref"]), timeout=30, what="lane idle")
        slow = live.stack.cli("send", "@ticker", "slow work [[slow:0.25]]")
    turn_id = slow.json["turn_id"]
    wait_for(
        lambda: (
            live.stack.lane_state(lane["ref"])["latest_turn_status"] == "completed"
            and idle(live, lane["ref"])
        ),
        timeout=60,
        what="the slow turn to end",
    )
    started, completed = live.turn_window(lane["id"], turn_id)
    firings = live.firings(trigger["id"])
    during = [f for f in firings if started < (f["started_at"] or "") < completed]
    assert during and {f["outcome"] for f in during} == {"skipped"}
    assert all(f["detail"].startswith("idle_only") for f in during)

    live.cli("trigger", "pause", trigger["id"])
    count = len(live.firings(trigger["id"]))
    time.sleep(3)
    assert len(live.firings(trigger["id"])) == count
    live.cli("trigger", "resume", trigger["id"])
    wait_for(
        lambda: len(live.firings(trigger["id"])) > count, timeout=15, what="resumed"
    )

    down = live.stack.cli("down", timeout=60)
    assert down.status == 0, down.stderr
    before = len(live.firings(trigger["id"]))
    time.sleep(4)
    up = live.stack.cli("up", "--port", "0", timeout=120)
    assert up.status == 0, up.stderr
    wait_for(
        lambda: [
            f for f in live.firings(trigger["id"])[before:] if f["reason"] == "time"
        ],
        timeout=30,
        what="the schedule after restart",
    )
    after = live.firings(trigger["id"])[before:]
    catch_ups = [f for f in after if f["reason"] == "catch_up"]
    assert len(catch_ups) == 1, after
    assert catch_ups[0]["outcome"] == "fired", catch_ups
