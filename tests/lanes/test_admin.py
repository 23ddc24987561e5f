"""The admin: every page renders, actions are thin calls to the op registry."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from dispatchsite.core.errors import AppServerError
from dispatchsite.core.origin import Origin
from lanes.models import (
    ApiToken,
    AuditEntry,
    Lane,
    LaneEvent,
    QueuedMessage,
    ServerRequest,
    WorkerLease,
)
from lanes.services import lane_register
from lanes.tokens import api_token_create

pytestmark = pytest.mark.django_db

MODELS = sorted(
    admin.site._registry, key=lambda m: (m._meta.app_label, m._meta.model_name)
)


def url(model: Any, view: str, *args: Any) -> str:
    return reverse(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args
    )


@pytest.fixture
def lane() -> Lane:
    return lane_register(
        thread_id="thread-alpha",
        title="alpha",
        source="own",
        cwd="/srv/alpha",
        host="testhost",
    )


@pytest.fixture
def rows(lane: Lane) -> dict[type, Any]:
    LaneEvent.objects.create(
        thread_id=lane.thread_id, seq=1, method="turn/started", turn_id="turn-1"
    )
    return {
        Lane: lane,
        AuditEntry: AuditEntry.objects.create(op="send", lane=lane.ref),
        QueuedMessage: QueuedMessage.objects.create(lane=lane, text="later"),
        ApiToken: api_token_create(name="admin-test")[0],
        ServerRequest: ServerRequest.objects.create(
            thread_id=lane.thread_id,
            request_id=7,
            method="item/commandExecution/requestApproval",
        ),
        WorkerLease: WorkerLease.objects.create(host="testhost", pid=1),
    }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_it_renders_the_changelist_and_add_pages(
    admin_client: Client, model: type
) -> None:
    assert admin_client.get(url(model, "changelist")).status_code == 200
    model_admin = admin.site._registry[model]
    request = admin_client.get("/admin/").wsgi_request
    expected = 200 if model_admin.has_add_permission(request) else 403
    assert admin_client.get(url(model, "add")).status_code == expected


def test_it_renders_the_change_pages_of_lane_models(
    admin_client: Client, rows: dict[type, Any]
) -> None:
    for model, obj in rows.items():
        response = admin_client.get(url(model, "change", obj.pk))
        assert response.status_code == 200, model


def test_it_lists_lanes_with_their_ref(admin_client: Client, lane: Lane) -> None:
    response = admin_client.get(url(Lane, "changelist"))
    assert lane.ref in response.content.decode()
    assert "/srv/alpha" in response.content.decode()
    found = admin_client.get(url(Lane, "changelist"), {"q": "thread-alpha"})
    assert lane.ref in found.content.decode()
    missed = admin_client.get(url(Lane, "changelist"), {"q": "nothing-like-it"})
    assert lane.ref not in missed.content.decode()


def test_it_shows_recent_events_on_the_lane_page(
    admin_client: Client, rows: dict[type, Any]
) -> None:
    page = admin_client.get(url(Lane, "change", rows[Lane].pk)).content.decode()
    assert "turn/started" in page
    assert "turn-1" in page


def test_it_never_shows_a_token_value(admin_client: Client) -> None:
    token, raw = api_token_create(name="secret")
    page = admin_client.get(url(ApiToken, "change", token.pk)).content.decode()
    assert raw not in page
    assert token.prefix in page


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict, Origin]]:
    seen: list[tuple[str, dict, Origin]] = []

    def recording(op_id: str, params: dict[str, Any], ctx: Origin) -> dict[str, Any]:
        seen.append((op_id, params, ctx))
        return {}

    monkeypatch.setattr("dispatchsite.core.registry.execute", recording)
    return seen


def act(client: Client, action: str, lanes: list[Lane], **extra: str) -> Any:
    data = {"action": action, "_selected_action": [str(x.pk) for x in lanes], **extra}
    return client.post(url(Lane, "changelist"), data, follow=True)


def test_it_archives_through_the_op_registry(
    admin_client: Client, lane: Lane, calls: list
) -> None:
    # A destroy op: the first post only asks.
    ask = act(admin_client, "archive_lane", [lane])
    assert ask.status_code == 200
    assert 'name="confirm" value="yes"' in ask.content.decode()
    assert calls == []
    response = act(admin_client, "archive_lane", [lane], confirm="yes")
    assert response.status_code == 200
    [(op_id, params, ctx)] = calls
    assert (op_id, params) == ("archive", {"target": lane.ref})
    assert ctx.surface == "admin"
    assert ctx.actor.startswith("admin:")


def test_it_stops_through_the_op_registry(
    admin_client: Client, lane: Lane, calls: list
) -> None:
    act(admin_client, "stop_turn", [lane])
    assert [(c[0], c[1]) for c in calls] == [("stop", {"lane": lane.ref})]


def test_it_asks_for_the_text_before_sending(
    admin_client: Client, lane: Lane, calls: list
) -> None:
    form = act(admin_client, "send_message", [lane])
    assert form.status_code == 200
    page = form.content.decode()
    assert 'name="text"' in page and 'name="mode"' in page
    assert 'value="steer"' in page
    assert calls == []
    act(admin_client, "send_message", [lane], apply="Send", text="hello", mode="queue")
    assert [(c[0], c[1]) for c in calls] == [
        ("send", {"lane": lane.ref, "text": "hello", "mode": "queue"})
    ]


def test_it_reports_op_errors_as_messages(
    admin_client: Client, lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(op_id: str, params: dict[str, Any], ctx: Origin) -> None:
        raise AppServerError("no worker", hint="dispatch up")

    monkeypatch.setattr("dispatchsite.core.registry.execute", failing)
    response = act(admin_client, "stop_turn", [lane])
    assert response.status_code == 200
    assert "no worker" in response.content.decode()


def test_it_revokes_tokens_from_the_admin(admin_client: Client) -> None:
    token, _raw = api_token_create(name="leaked")
    admin_client.post(
        url(ApiToken, "changelist"),
        {"action": "revoke", "_selected_action": [str(token.pk)]},
        follow=True,
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
