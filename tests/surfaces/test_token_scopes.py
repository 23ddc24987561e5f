"""Scoped tokens over REST: read-only, lane-limited and expiring tokens.

The scopes are checked by lanes.tokens.TokenScope; these tests hold REST to
them on both the per-op routes and the generic `POST /ops/{op_id}` one (the
route MCP uses), and check the audit log names the token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from lanes.models import ApiToken, AuditEntry, Lane
from lanes.services import lane_register
from lanes.tokens import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def client_for(raw: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def alpha() -> Lane:
    return lane_register(
        thread_id="thread-alpha", title="alpha", source="own", cwd="/tmp", host="t"
    )


@pytest.fixture
def beta() -> Lane:
    return lane_register(
        thread_id="thread-beta", title="beta", source="own", cwd="/tmp", host="t"
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return body["error"]


def post(api: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(path, body or {}, content_type="application/json")


def test_it_lets_a_read_only_token_read_but_not_write(alpha: Lane) -> None:
    api = client_for(api_token_create(name="reader", read_only=True)[1])
    assert api.get("/api/v1/lanes").status_code == 200
    assert api.get(f"/api/v1/lanes/{alpha.ref}").status_code == 200

    error = assert_error(
        post(api, f"/api/v1/lanes/{alpha.ref}/send", {"text": "hi"}), 403, "authority"
    )
    assert error["exit_status"] == 7
    assert "read-only" in error["message"]
    assert "--read-only" in error["hint"] and "dispatch token list" in error["hint"]
    # The generic route (MCP's) and destroy ops are held to the same scope.
    assert_error(
        post(api, "/api/v1/ops/send", {"lane": alpha.ref, "text": "x"}),
        403,
        "authority",
    )
    assert_error(post(api, f"/api/v1/threads/{alpha.ref}/archive"), 403, "authority")
    assert_error(
        post(api, "/api/v1/lanes", {"name": "n", "cwd": "/"}), 403, "authority"
    )
    assert Lane.objects.get(pk=alpha.pk).status != Lane.Status.ARCHIVED

    refused = AuditEntry.objects.filter(op="send", outcome="authority")
    assert [(e.surface, e.actor) for e in refused] == [("rest", "token:reader")] * 2


def test_it_limits_a_lane_scoped_token_to_its_lanes(alpha: Lane, beta: Lane) -> None:
    api = client_for(api_token_create(name="alpha-only", lanes=["@alpha"])[1])

    assert api.get(f"/api/v1/lanes/{alpha.ref}").json()["ref"] == alpha.ref
    assert api.get(f"/api/v1/lanes/{alpha.thread_id}").json()["ref"] == alpha.ref
    listed = api.get("/api/v1/lanes").json()["lanes"]
    assert [row["ref"] for row in listed] == [alpha.ref]

    foreign = assert_error(api.get(f"/api/v1/lanes/{beta.ref}"), 403, "authority")
    assert beta.ref in foreign["message"] and "dispatch token list" in foreign["hint"]
    # An unknown lane gets the same answer: the token learns nothing of others.
    unknown = assert_error(api.get("/api/v1/lanes/@nope"), 403, "authority")
    assert unknown["message"] == foreign["message"].replace(beta.ref, "@nope")
    for path in (
        f"/api/v1/lanes/{beta.thread_id}/transcript",
        "/api/v1/lanes/unmanaged",
        "/api/v1/daemon/log",
        "/api/v1/daemon/status",
        "/api/v1/search?query=x",
        "/api/v1/history",
    ):
        assert_error(api.get(path), 403, "authority")
    for path, body in (
        (f"/api/v1/lanes/{beta.ref}/send", {"text": "hi"}),
        (f"/api/v1/threads/{beta.ref}/rename", {"new": "gamma"}),
        (f"/api/v1/threads/{beta.thread_id}/archive", {}),
        # Writes that name no lane yet are refused.
        ("/api/v1/lanes", {"name": "n", "cwd": "/tmp"}),
        ("/api/v1/lanes/attach", {"thread": "thread-other"}),
        ("/api/v1/ops/send", {"lane": beta.ref, "text": "hi"}),
    ):
        assert_error(post(api, path, body), 403, "authority")
    assert Lane.objects.get(pk=beta.pk).title == "beta"
    assert not AuditEntry.objects.filter(outcome="ok").exists()

    # Its own lane passes the scope: with no worker running, the send then
    # fails where any send would.
    own = post(api, f"/api/v1/lanes/{alpha.ref}/send", {"text": "hi"})
    assert_error(own, 503, "host_unavailable")
    assert api.get("/api/v1/models").status_code != 403


def test_it_combines_read_only_with_lanes(alpha: Lane, beta: Lane) -> None:
    api = client_for(
        api_token_create(name="both", read_only=True, lanes=[alpha.thread_id])[1]
    )
    assert api.get(f"/api/v1/lanes/{alpha.ref}").status_code == 200
    assert_error(api.get(f"/api/v1/lanes/{beta.ref}"), 403, "authority")
    error = assert_error(
        post(api, f"/api/v1/lanes/{alpha.ref}/send", {"text": "hi"}), 403, "authority"
    )
    assert "read-only" in error["message"]


def test_it_refuses_an_expired_token_like_a_revoked_one(alpha: Lane) -> None:
    expiring = client_for(api_token_create(name="soon", expires="1h")[1])
    assert expiring.get("/api/v1/lanes").status_code == 200
    ApiToken.objects.filter(name="soon").update(
        expires_at=timezone.now() - timedelta(seconds=1),
        created_at=timezone.now() - timedelta(hours=1),
    )
    expired = assert_error(expiring.get("/api/v1/lanes"), 401, "unauthorized")

    revoked = client_for(api_token_create(name="gone")[1])
    api_token_revoke(name="gone")
    assert expired == assert_error(revoked.get("/api/v1/lanes"), 401, "unauthorized")


def test_it_shows_the_token_as_the_actor_in_the_audit_log(alpha: Lane) -> None:
    attached = lane_register(
        thread_id="thread-att", title="att", source="attached", cwd="/", host="t"
    )
    api = client_for(api_token_create(name="auditor")[1])
    refused = post(api, f"/api/v1/lanes/{attached.ref}/send", {"text": "hi"})
    assert_error(refused, 403, "authority")

    [row] = api.get("/api/v1/daemon/log").json()["actions"]
    assert row["op"] == "send" and row["outcome"] == "authority"
    assert row["surface"] == "rest" and row["actor"] == "token:auditor"
