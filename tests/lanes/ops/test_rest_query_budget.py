"""Query budgets of the hot REST calls, so that none silently regrows.

Every REST call authenticates and most resolve one lane: each of those is
one query, and a lane is resolved once per call. A budget that fails here
means a new query on every request of that kind (see bench/bench_load.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from lanes.journal import reader
from lanes.models import Lane, LaneEvent, QueuedMessage
from lanes.services import lane_register
from lanes.tokens import api_token_create, api_token_revoke
from tests.support.scripted_worker import Worker

pytestmark = pytest.mark.django_db

THREAD_ID = "0d6f4b52-6a55-4c41-9d8e-4f1f3a1c2b10"


@pytest.fixture
def api() -> Client:
    raw = api_token_create(name="budget")[1]
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    # A token's first call also marks it used (at most once a minute).
    assert client.get("/api/v1/lanes").status_code == 200
    return client


@pytest.fixture
def lanes() -> list[Any]:
    return [
        lane_register(
            thread_id=THREAD_ID if i == 0 else f"thread-{i}",
            title=f"lane-{i}",
            source="own",
            cwd="/tmp",
            host="testhost",
        )
        for i in range(20)
    ]


def test_it_shows_a_lane_named_by_thread_id_in_five_queries(
    api: Client, lanes: list[Any], django_assert_max_num_queries: Any
) -> None:
    # token, lane, queue counts, sync state, launch
    with django_assert_max_num_queries(5):
        response = api.get(f"/api/v1/lanes/{THREAD_ID}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["ref"]) == (THREAD_ID, lanes[0].ref)
    assert body["queue"]["pending"] == 0


def test_it_lists_lanes_in_three_queries_whatever_their_number(
    api: Client, lanes: list[Any], django_assert_max_num_queries: Any
) -> None:
    # token, lanes, their sync states
    with django_assert_max_num_queries(3):
        response = api.get("/api/v1/lanes")
    assert response.status_code == 200, response.content
    rows = response.json()["lanes"]
    assert [row["ref"] for row in rows] == [lane.ref for lane in lanes]
    assert all(row["sync"]["history_capability"] for row in rows)


def test_it_pages_the_journal_in_four_queries(
    api: Client, lanes: list[Any], django_assert_max_num_queries: Any
) -> None:
    for seq in (1, 2, 3):
        LaneEvent.objects.create(
            thread_id=THREAD_ID,
            seq=seq,
            method="item/started",
            params={"n": seq},
            received_at=timezone.now(),
        )
    # token, lane, the page, the lane again (its status as of the page)
    with django_assert_max_num_queries(4):
        response = api.get(
            f"/api/v1/lanes/{THREAD_ID}/watch?after=1&limit=50&timeout=0"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [event["seq"] for event in body["events"]] == [2, 3]
    assert (body["last_seq"], body["ref"]) == (3, lanes[0].ref)


def test_it_lists_the_queue_in_three_queries(
    api: Client,
    lanes: list[Any],
    worker: Worker,
    django_assert_max_num_queries: Any,
) -> None:
    lane = lanes[0]
    for text in ("one", "two"):
        QueuedMessage.objects.create(lane=lane, text=text)
    # token, lane, messages (each message's lane is the one resolved)
    with django_assert_max_num_queries(3):
        response = api.get(f"/api/v1/lanes/{lane.ref}/queue")
    assert response.status_code == 200, response.content
    messages = response.json()["messages"]
    assert [(m["text"], m["lane"]) for m in messages] == [
        ("two", lane.ref),
        ("one", lane.ref),
    ]


def test_it_queues_a_message_in_six_queries(
    api: Client,
    lanes: list[Any],
    worker: Worker,
    django_assert_max_num_queries: Any,
) -> None:
    lane = lanes[0]
    # token, lane, the message, its audit row, the lane re-read after them,
    # the pending count (the journal event is written after commit)
    with django_assert_max_num_queries(6):
        response = api.post(
            f"/api/v1/lanes/{THREAD_ID}/send",
            json.dumps({"text": "later", "mode": "queue"}),
            content_type="application/json",
        )
    assert response.status_code == 200, response.content
    body = response.json()
    message = QueuedMessage.objects.get(lane=lane)
    assert (body["queued_message_id"], body["ref"]) == (message.pk, lane.ref)
    assert body["detail"] == f"queued message {message.pk}; pending=1"


def test_it_prefers_a_ref_over_another_lanes_thread_id(
    api: Client, lanes: list[Any]
) -> None:
    named = lanes[1]
    impostor = lane_register(
        thread_id=named.ref, title="impostor", source="own", cwd="/", host="h"
    )
    response = api.get(f"/api/v1/lanes/{named.ref}")
    assert response.json()["id"] == named.thread_id
    response = api.get(f"/api/v1/lanes/{impostor.ref}")
    assert response.json()["id"] == impostor.thread_id


def test_it_refuses_a_token_from_the_request_after_its_revocation(
    api: Client, lanes: list[Any]
) -> None:
    assert api.get("/api/v1/lanes").status_code == 200
    api_token_revoke(name="budget")
    response = api.get("/api/v1/lanes")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_it_shows_the_lane_as_it_is_after_a_watch_waited(
    api: Client, lanes: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = lanes[0]

    def a_turn_starts_meanwhile(seconds: float) -> None:
        Lane.objects.filter(pk=lane.pk).update(status=Lane.Status.BUSY)
        LaneEvent.objects.create(
            thread_id=THREAD_ID, seq=1, method="turn/started", params={}
        )

    monkeypatch.setattr(reader.time, "sleep", a_turn_starts_meanwhile)
    response = api.get(f"/api/v1/lanes/{lane.ref}/watch?after=0&timeout=5")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [event["method"] for event in body["events"]] == ["turn/started"]
    assert (body["status"], body["timed_out"]) == ("busy", False)
