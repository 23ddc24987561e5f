"""In-process trigger tests: a fake clock and a scripted app-server gateway.

Time-based logic takes `now` as an argument, so tests pass the clock instead
of sleeping; deliveries go through the real lane services to a gateway that
records every call (no worker, no app-server).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatchsite.core.origin import Origin
from lanes.models import Lane
from lanes.services import lane_register
from lanes.worker import gateway
from triggers.models import Trigger, TriggerFiring
from triggers.services import (
    TriggerSpec,
    firing_run,
    trigger_create,
    triggers_claim,
)

CTX = Origin(surface="test")
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class Codex:
    """The app-server calls made, by method; a method may be made to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failing: dict[str, str] = {}
        self.turns = itertools.count(1)

    def texts(self, method: str = "turn/start") -> list[str]:
        return [p["input"][0]["text"] for m, p in self.calls if m == method]

    def __call__(
        self, host: str, method: str, params: dict[str, Any], **kwargs: Any
    ) -> Any:
        self.calls.append((method, params))
        if method in self.failing:
            raise gateway.RpcFailed(self.failing[method], rpc_code=-32600)
        if method == "turn/start":
            return {"turn": {"id": f"turn-{next(self.turns)}"}}
        return {}


@pytest.fixture
def codex(monkeypatch: pytest.MonkeyPatch) -> Codex:
    fake = Codex()
    monkeypatch.setattr(gateway, "rpc", fake)
    monkeypatch.setattr(gateway, "notify_worker", lambda host, message: None)
    return fake


def make_lane(title: str = "work") -> Lane:
    return lane_register(
        thread_id=f"thread-{title}", title=title, source="own", cwd="/", host="testhost"
    )


@pytest.fixture
def lane() -> Lane:
    return make_lane()


def add(lane: Lane, now: datetime = T0, **fields: Any) -> Trigger:
    """A trigger created at `now` (the fake clock)."""
    spec = {
        "name": fields.pop("name", "t"),
        "lane": lane.ref,
        "when": "interval",
        "action": "send",
        "text": "hello {{ trigger }}",
        **fields,
    }
    if spec["when"] in ("interval", "idle_for"):
        spec.setdefault("seconds", 2)
    return trigger_create(spec=TriggerSpec(**spec), origin=CTX, now=now)


def tick(now: datetime) -> list[TriggerFiring]:
    """One beat tick at `now`, then every claimed firing run at its slot."""
    claimed = triggers_claim(now=now)
    ran = []
    for slot_at, ids in sorted(claimed.due.items()):
        for firing_id in ids:
            firing = firing_run(firing_id=firing_id, now=max(slot_at, now))
            if firing is not None:
                ran.append(firing)
    return ran


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
