"""`stop` interrupts the turn that is running, even one the lane has not heard of."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dispatchsite.core.errors import ValidationError
from dispatchsite.core.origin import Origin
from lanes import services
from lanes.models import Lane
from tests.support.scripted_worker import CodexSays, Worker

pytestmark = pytest.mark.django_db


def test_it_stops_the_turn_a_goal_started_before_the_journal_said_so(
    worker: Worker,
) -> None:
    lane = services.lane_register(
        thread_id=str(uuid.uuid4()), title="goal", source="own", cwd="/tmp", host="t"
    )
    Lane.objects.filter(pk=lane.pk).update(active_turn_id="turn-old", status="busy")
    lane.refresh_from_db()

    def interrupt(params: dict[str, Any]) -> dict[str, Any]:
        if params["turnId"] != "turn-new":
            raise CodexSays(
                f"expected active turn id '{params['turnId']}' but found 'turn-new'"
            )
        return {}

    worker.handlers["turn/interrupt"] = interrupt
    out = services.lane_stop(lane=lane, origin=Origin(surface="test"))

    assert out["turn_id"] == "turn-new"
    assert [p["turnId"] for m, p in worker.calls if m == "turn/interrupt"] == [
        "turn-old",
        "turn-new",
    ]


def test_it_still_reports_other_interrupt_refusals(worker: Worker) -> None:
    lane = services.lane_register(
        thread_id=str(uuid.uuid4()), title="done", source="own", cwd="/tmp", host="t"
    )
    Lane.objects.filter(pk=lane.pk).update(active_turn_id="turn-old", status="busy")
    lane.refresh_from_db()

    def interrupt(params: dict[str, Any]) -> dict[str, Any]:
        raise CodexSays("Invalid request: missing field `turnId`")

    worker.handlers["turn/interrupt"] = interrupt
    with pytest.raises(ValidationError):
        services.lane_stop(lane=lane, origin=Origin(surface="test"))
