"""The admin as a console: the lane page's panel and buttons are ops."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from dispatchsite.core.errors import LaneBusyError
from dispatchsite.core.origin import Origin
from lanes.models import AuditEntry, Lane, LaneEvent, QueuedMessage, ServerRequest
from lanes.services import lane_register

pytestmark = pytest.mark.django_db

Call = tuple[str, dict[str, Any], Origin]


@pytest.fixture
def lane() -> Lane:
    return lane_register(
        thread_id="thread-alpha", title="alpha", source="own", cwd="/srv", host="h"
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    seen: list[Call] = []

    def recording(op_id: str, params: dict[str, Any], ctx: Origin) -> dict[str, Any]:
        seen.append((op_id, params, ctx))
        return {"detail": f"{op_id} ok"}

    monkeypatch.setattr("dispatchsite.core.registry.execute", recording)
    return seen


def act_url(lane: Lane, action: str) -> str:
    return reverse("admin:lanes_lane_act", args=[lane.pk, action])


def page_of(lane: Lane) -> str:
    return reverse("admin:lanes_lane_change", args=[lane.pk])


def test_it_shows_state_queue_transcript_and_the_live_link(
    admin_client: Client, lane: Lane
) -> None:
    LaneEvent.objects.create(
        thread_id=lane.thread_id, seq=1, method="turn/started", turn_id="t1"
    )
    LaneEvent.objects.create(
        thread_id=lane.thread_id,
        seq=2,
        method="item/completed",
        turn_id="t1",
        params={"item": {"type": "agentMessage", "id": "m1", "text": "hello there"}},
    )
    Lane.objects.filter(pk=lane.pk).update(
        status="idle", latest_turn_id="t1", latest_turn_status="completed"
    )
    QueuedMessage.objects.create(lane=lane, text="do this next")
    QueuedMessage.objects.create(lane=lane, text="broke", status="error", error="boom")
    ServerRequest.objects.create(
        thread_id=lane.thread_id,
        request_id=3,
        method="item/commandExecution/requestApproval",
        held=True,
    )
    html = admin_client.get(page_of(lane)).content.decode()
    assert f'href="/lanes/{lane.ref}/live"' in html
    assert "Turn 1:" in html and "completed" in html
    assert "do this next" in html and "boom" in html
    assert html.count(act_url(lane, "queue-cancel")) == 1
    assert html.count(act_url(lane, "queue-retry")) == 1
    assert "hello there" in html
    assert act_url(lane, "request-respond") in html
    assert 'id="console-archive"' in html and 'id="console-stop"' not in html


PARAMS = [
    ("send", {"text": "hi", "mode": "steer"}, "send", {"text": "hi", "mode": "steer"}),
    ("stop", {}, "stop", {}),
    ("rename", {"new": "beta"}, "lane-rename", {"old": None, "new": "beta"}),
    ("restore", {}, "restore", {"target": None}),
    (
        "goal-set",
        {"objective": "ship", "status": ""},
        "goal-set",
        {"objective": "ship"},
    ),
    ("fork", {"name": "alpha-2"}, "fork", {"name": "alpha-2"}),
    ("compact", {}, "compact", {}),
    ("sync", {}, "sync", {}),
    ("queue-cancel", {"id": "4"}, "queue-cancel", {"id": 4}),
    ("queue-retry", {"id": "4"}, "queue-retry", {"id": 4}),
    (
        "request-respond",
        {"id": "9", "decision": "accept"},
        "request-respond",
        {"id": 9, "decision": "accept"},
    ),
]


@pytest.mark.parametrize(("action", "post", "op_id", "expected"), PARAMS)
def test_it_runs_each_button_as_its_op_under_the_admins_name(
    admin_client: Client,
    lane: Lane,
    calls: list[Call],
    action: str,
    post: dict[str, str],
    op_id: str,
    expected: dict[str, Any],
) -> None:
    response = admin_client.post(act_url(lane, action), post, follow=True)
    assert response.status_code == 200
    [(ran, params, origin)] = calls
    lane_keys = {"lane": lane.ref} if op_id not in {"lane-rename", "restore"} else {}
    if action.startswith(("queue", "request")):
        lane_keys = {}
    wanted = {**lane_keys, **{k: v or lane.ref for k, v in expected.items()}}
    assert (ran, params) == (op_id, wanted)
    assert (origin.surface, origin.actor) == ("admin", "admin:admin")
    assert f"{op_id} ok" in response.content.decode()


@pytest.mark.parametrize(
    ("action", "op_id", "params"),
    [("archive", "archive", "target"), ("goal-clear", "goal-clear", "lane")],
)
def test_it_asks_before_a_destroy_op(
    admin_client: Client,
    lane: Lane,
    calls: list[Call],
    action: str,
    op_id: str,
    params: str,
) -> None:
    ask = admin_client.post(act_url(lane, action))
    assert ask.status_code == 200
    assert 'name="confirm" value="yes"' in ask.content.decode()
    assert calls == []
    done = admin_client.post(act_url(lane, action), {"confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == page_of(lane)
    assert [(c[0], c[1]) for c in calls] == [(op_id, {params: lane.ref})]


def test_it_reports_bad_input_without_running_the_op(
    admin_client: Client, lane: Lane, calls: list[Call]
) -> None:
    response = admin_client.post(act_url(lane, "send"), {"mode": "nope"}, follow=True)
    html = response.content.decode()
    assert "Send: text: This field is required." in html
    assert calls == []


def test_it_reports_op_errors_on_the_lane_page(
    admin_client: Client, lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(op_id: str, params: dict[str, Any], ctx: Origin) -> None:
        raise LaneBusyError("lane is busy", hint="steer or queue")

    monkeypatch.setattr("dispatchsite.core.registry.execute", busy)
    response = admin_client.post(
        act_url(lane, "send"), {"text": "x", "mode": "send"}, follow=True
    )
    # The admin capitalises messages.
    assert "Send: lane is busy (steer or queue)" in response.content.decode()


def test_it_creates_a_lane_with_the_new_op(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    seen: list[Call] = []

    def new(op_id: str, params: dict[str, Any], ctx: Origin) -> dict[str, Any]:
        seen.append((op_id, params, ctx))
        made = lane_register(
            thread_id="thread-new",
            title=params["name"],
            source="own",
            cwd="/",
            host="h",
        )
        return {"ref": made.ref}

    monkeypatch.setattr("dispatchsite.core.registry.execute", new)
    form = admin_client.get(reverse("admin:lanes_lane_add"))
    assert form.status_code == 200
    assert 'value="workspace-write"' in form.content.decode()
    response = admin_client.post(
        reverse("admin:lanes_lane_add"),
        {"name": "fresh", "cwd": str(tmp_path), "text": "go", "sandbox": "read-only"},
    )
    made = Lane.objects.get(title="fresh")
    assert response.status_code == 302 and response["Location"] == page_of(made)
    [(op_id, params, origin)] = seen
    assert op_id == "new" and origin.actor == "admin:admin"
    assert params == {
        "name": "fresh",
        "cwd": str(tmp_path),
        "text": "go",
        "sandbox": "read-only",
        "send": True,
    }


def test_it_cancels_and_retries_a_queued_message_with_audit(
    admin_client: Client, lane: Lane
) -> None:
    message = QueuedMessage.objects.create(lane=lane, text="later")
    admin_client.post(act_url(lane, "queue-cancel"), {"id": message.pk})
    message.refresh_from_db()
    assert (message.status, message.error) == (
        "error",
        "cancelled by admin admin:admin",
    )
    again = admin_client.post(
        act_url(lane, "queue-cancel"), {"id": message.pk}, follow=True
    )
    assert (
        f"queued message {message.pk} is error, not pending" in again.content.decode()
    )
    admin_client.post(act_url(lane, "queue-retry"), {"id": message.pk})
    message.refresh_from_db()
    assert (message.status, message.error) == ("pending", "")
    audit = list(
        AuditEntry.objects.filter(op__startswith="queue-").values_list(
            "op", "outcome", "actor"
        )
    )
    assert sorted(audit) == [
        ("queue-cancel", "ok", "admin:admin"),
        ("queue-cancel", "validation", "admin:admin"),
        ("queue-retry", "ok", "admin:admin"),
    ]
