"""The approvals inbox in the admin and on REST; the lane page's goal history."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lanes.models import Lane, LaneEvent, LaneGoal, ServerRequest, WorkerLease
from lanes.services import lane_register
from lanes.tokens import api_token_create

pytestmark = pytest.mark.django_db

APPROVAL = "item/commandExecution/requestApproval"


def url(model: Any, view: str, *args: Any) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


@pytest.fixture
def lane() -> Lane:
    return lane_register(
        thread_id="thread-inbox",
        title="inbox",
        source="own",
        cwd="/srv",
        host="testhost",
    )


def held_request(lane: Lane, request_id: int) -> ServerRequest:
    return ServerRequest.objects.create(
        thread_id=lane.thread_id,
        request_id=request_id,
        method=APPROVAL,
        params={"threadId": lane.thread_id, "turnId": "t1", "command": "ls"},
        held=True,
        host=lane.host,
        connection="c1",
    )


def test_it_answers_held_requests_from_the_admin(
    admin_client: Client, lane: Lane, django_capture_on_commit_callbacks: Any
) -> None:
    WorkerLease.objects.create(host=lane.host, pid=1, heartbeat_at=timezone.now())
    first, second = held_request(lane, 0), held_request(lane, 1)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url(ServerRequest, "changelist"),
            {"action": "cancel_requests", "_selected_action": [str(first.pk)]},
            follow=True,
        )
    assert response.status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.decision, first.response) == (
        "responded",
        "cancel",
        {"decision": "cancel"},
    )
    assert first.answered_by.startswith("admin admin:")
    assert second.state == "pending"
    answered = LaneEvent.objects.get(
        thread_id=lane.thread_id, method="dispatch/approval/answered"
    )
    assert answered.params["decision"] == "cancel"
    # A second answer is refused and reported; the first one stands.
    response = admin_client.post(
        url(ServerRequest, "changelist"),
        {"action": "accept_requests", "_selected_action": [str(first.pk)]},
        follow=True,
    )
    assert "no longer pending" in response.content.decode()
    first.refresh_from_db()
    assert first.decision == "cancel"


def test_it_reports_a_respond_without_a_worker(
    admin_client: Client, lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forget a lease another test saw: the gateway trusts one for 2 s.
    monkeypatch.setattr("lanes.worker.gateway._lease_checked_until", {})
    request = held_request(lane, 0)
    response = admin_client.post(
        url(ServerRequest, "changelist"),
        {"action": "accept_requests", "_selected_action": [str(request.pk)]},
        follow=True,
    )
    assert "no dispatch worker is running" in response.content.decode()
    request.refresh_from_db()
    assert request.state == "pending"


def test_it_shows_the_goal_history_on_the_lane_page(
    admin_client: Client, lane: Lane
) -> None:
    LaneGoal.objects.create(
        lane=lane,
        objective="ship the parser",
        status="complete",
        tokens_used=1234,
        set_by="cli alice",
        cleared_at=timezone.now(),
        cleared_by="replaced",
    )
    LaneGoal.objects.create(lane=lane, objective="write the docs", status="active")
    page = admin_client.get(url(Lane, "change", lane.pk)).content.decode()
    assert "ship the parser" in page and "write the docs" in page
    assert "cli alice" in page and "1234" in page


def test_it_lists_and_answers_held_requests_over_rest(
    lane: Lane, django_capture_on_commit_callbacks: Any
) -> None:
    WorkerLease.objects.create(host=lane.host, pid=1, heartbeat_at=timezone.now())
    request = held_request(lane, 3)
    ServerRequest.objects.create(  # answered by policy: never listed
        thread_id=lane.thread_id, request_id=4, method=APPROVAL, state="responded"
    )
    api = Client(headers={"Authorization": f"Bearer {api_token_create(name='r')[1]}"})
    listed = api.get("/api/v1/requests", {"lane": lane.ref})
    assert listed.status_code == 200, listed.content
    (row,) = listed.json()["requests"]
    assert (row["id"], row["lane"], row["command"]) == (request.pk, lane.ref, "ls")
    with django_capture_on_commit_callbacks(execute=True):
        answered = api.post(
            f"/api/v1/requests/{request.pk}/respond",
            {"decision": "decline"},
            content_type="application/json",
        )
    assert answered.status_code == 200, answered.content
    assert answered.json()["request"]["decision"] == "decline"
    assert answered.json()["request"]["answered_by"].startswith("rest")
    again = api.post(
        f"/api/v1/requests/{request.pk}/respond",
        {"decision": "accept"},
        content_type="application/json",
    )
    assert again.status_code == 409, again.content
    assert api.get("/api/v1/requests").json() == {"requests": []}
