"""One beat's ticks against the shared database, for test_two_beats.

`python -m tests.hosts.beat_race setup` migrates and adds a lane with an
interval trigger; `... race START N` (beat number N) waits until the wall
clock reaches START (so two of them tick together), then claims and runs
each slot the way a beat's tick and its fire tasks do, recording every
app-server call it makes as a JSON line in $BEAT_RACE_CALLS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import django

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
SLOTS = 5


def setup() -> None:
    from django.core.management import call_command

    from dispatchsite.core.origin import Origin
    from lanes.services import lane_register
    from triggers.services import TriggerSpec, trigger_create

    call_command("migrate", interactive=False, verbosity=0)
    lane = lane_register(
        thread_id="thread-race", title="race", source="own", cwd="/", host="a"
    )
    spec = TriggerSpec(
        name="every2",
        lane=lane.ref,
        when="interval",
        seconds=2,
        action="send",
        text="tick {{ trigger }}",
    )
    trigger_create(spec=spec, origin=Origin(surface="test"), now=T0)


def race(start: float, beat: int) -> None:
    from lanes.worker import gateway
    from triggers.services import firing_run, triggers_claim

    calls = os.environ["BEAT_RACE_CALLS"]

    def record(host: str, method: str, params: dict[str, Any], **kw: Any) -> Any:
        with open(calls, "a", encoding="utf-8") as out:
            out.write(json.dumps({"pid": os.getpid(), "method": method}) + "\n")
        return {"turn": {"id": f"turn-{os.getpid()}-{time.monotonic_ns()}"}}

    gateway.rpc = record  # type: ignore[assignment]
    gateway.notify_worker = lambda host, message: None  # type: ignore[assignment]
    gateway.require_worker = lambda host: None  # type: ignore[assignment]
    time.sleep(max(0.0, start - time.time()))
    claimed_ids: list[int] = []
    for step in range(SLOTS * 2):
        # Both beats tick the very same instants, the hardest case.
        now = T0 + timedelta(seconds=step)
        claimed = triggers_claim(now=now)
        for slot_at, ids in sorted(claimed.due.items()):
            for firing_id in ids:
                claimed_ids.append(firing_id)
                firing_run(firing_id=firing_id, now=max(slot_at, now))
    print(json.dumps({"pid": os.getpid(), "claimed": claimed_ids}))


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    django.setup()
    if sys.argv[1] == "setup":
        setup()
    else:
        race(float(sys.argv[2]), int(sys.argv[3]))
