"""Hostile HTTP and websocket input: allowed hosts, headers, and JSON errors.

Everything under /api/ answers the documented JSON error body, whatever the
method, size, encoding or path; a Host the server does not answer to is a 400
(DNS rebinding); the admin and the live page carry the usual headers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from dispatchsite.asgi import application
from lanes.models import Lane
from lanes.services import lane_register
from lanes.tokens import api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    raw = api_token_create(name="security")[1]
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def alpha() -> Lane:
    return lane_register(
        thread_id="thread-alpha", title="alpha", source="own", cwd="/tmp", host="t"
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["exit_status"], int)
    return body["error"]


# -- hosts and headers ---------------------------------------------------------


def test_it_answers_only_to_loopback_hosts() -> None:
    allowed = set(settings.ALLOWED_HOSTS)
    assert "*" not in allowed
    assert {"127.0.0.1", "localhost", "[::1]"} <= allowed
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert Client(HTTP_HOST=host).get("/healthz").status_code == 200


def test_it_refuses_a_foreign_host_with_a_json_400_under_the_api() -> None:
    error = assert_error(
        Client(HTTP_HOST="attacker.example").get("/api/v1/health"),
        400,
        "validation",
    )
    assert "attacker.example" in error["message"]
    assert Client(HTTP_HOST="attacker.example").get("/healthz").status_code == 400
    response = Client(HTTP_HOST="attacker.example").get("/admin/login/")
    assert response.status_code == 400


def test_it_reads_extra_hosts_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dispatchsite import settings as site_settings

    monkeypatch.setenv("DISPATCH_ALLOWED_HOSTS", " box.lan, ,10.0.0.2 ")
    assert site_settings.allowed_hosts() == [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "box.lan",
        "10.0.0.2",
    ]


def assert_hardened(response: Any) -> None:
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] in {"no-referrer", "same-origin"}


def test_it_sends_security_headers_on_the_admin_and_the_live_page(
    alpha: Lane,
) -> None:
    assert_hardened(Client().get("/admin/login/"))
    staff = Client()
    staff.force_login(
        User.objects.create_user("staff", password="pw-pw-pw", is_staff=True)
    )
    page = staff.get(f"/lanes/{alpha.ref}/live")
    assert page.status_code == 200
    assert_hardened(page)


# -- JSON errors under /api/ ---------------------------------------------------


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_it_answers_413_for_a_body_over_the_limit(api: Client) -> None:
    body = json.dumps({"name": "x" * 2000})
    for path in ("/api/v1/lanes", "/api/v1/ops/new"):
        response = api.post(path, body, content_type="application/json")
        error = assert_error(response, 413, "validation")
        assert "1000" in error["message"]
        assert error["data"] == {"limit_bytes": 1000}


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_answers_405_as_json(api: Client, method: str) -> None:
    response = getattr(api, method)("/api/v1/lanes")
    error = assert_error(response, 405, "validation")
    assert "GET" in response["Allow"] and "POST" in response["Allow"]
    assert "GET" in error["hint"] and "POST" in error["hint"]


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_it_answers_404_for_unknown_api_paths_on_every_method(method: str) -> None:
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/v1/no-such-route")
    assert_error(response, 404, "not_found")
    assert_error(getattr(client, method)("/api/nowhere"), 404, "not_found")


def test_it_answers_csrf_failures_under_the_api_as_json() -> None:
    from dispatchsite.urls import csrf_failure

    request = Client().get("/healthz").wsgi_request
    request.path = request.path_info = "/api/v1/lanes"
    error = assert_error(csrf_failure(request, reason="no token"), 403, "authority")
    assert "no token" in error["message"]
    request.path = request.path_info = "/admin/login/"
    page = csrf_failure(request, reason="no token")
    assert page.status_code == 403
    assert page["Content-Type"].startswith("text/html")


def test_it_answers_500_under_the_api_as_json() -> None:
    from dispatchsite.urls import server_error

    request = Client().get("/healthz").wsgi_request
    request.path = request.path_info = "/api/v1/lanes"
    assert_error(server_error(request), 500, "internal")


@pytest.mark.parametrize("value", ["x\ud800y", "\udfff", "nul\x00byte"])
def test_it_refuses_lone_surrogates_and_nul_bytes(api: Client, value: str) -> None:
    response = api.post(
        "/api/v1/lanes", json.dumps({"name": value}), content_type="application/json"
    )
    error = assert_error(response, 400, "validation")
    assert "name" in error["message"]
    assert Lane.objects.count() == 0


def test_it_checks_strings_in_every_op_input() -> None:
    from dispatchsite.core.errors import ValidationError
    from dispatchsite.core.registry import load_ops, parse_input, unsafe_string

    op = load_ops()["new"]
    with pytest.raises(ValidationError, match="goal"):
        parse_input(op, {"name": "ok", "goal": "bad\ud800"})
    with pytest.raises(ValidationError, match="cwd"):
        parse_input(op, {"name": "ok", "cwd": "/tmp/\x00"})
    parsed = parse_input(op, {"name": "é ok ✓", "goal": "fine"})
    assert parsed.model_dump()["name"] == "é ok ✓"
    nested = {"a": ["ok", {"b": "x\ud800"}]}
    assert unsafe_string(nested, "") == (
        "a.1.b",
        "contains a lone surrogate (not valid Unicode text)",
    )


# -- websockets ----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_closes_a_websocket_to_an_unknown_path_with_4404() -> None:
    communicator = WebsocketCommunicator(application, "/ws/nope")
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output(timeout=5)
    assert message == {
        "type": "websocket.close",
        "code": 4404,
        "reason": "no such websocket path",
    }
    await communicator.wait()
