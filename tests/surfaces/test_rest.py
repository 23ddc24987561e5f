"""The REST surface (/api/v1): generated routes, auth and the error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from dispatchsite.core import errors
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import load_ops
from lanes.models import Lane
from lanes.services import lane_register
from lanes.tokens import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_token() -> str:
    return api_token_create(name="tests")[1]


@pytest.fixture
def api(raw_token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw_token}"})


@pytest.fixture
def alpha() -> Lane:
    return lane_register(
        thread_id="thread-alpha",
        title="alpha",
        source="own",
        cwd="/tmp",
        host="testhost",
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["exit_status"], int)
    return body["error"]


def test_it_serves_health_without_a_token() -> None:
    response = Client().get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.json()["version"]


def test_it_refuses_requests_without_a_token(alpha: Lane) -> None:
    error = assert_error(Client().get("/api/v1/lanes"), 401, "unauthorized")
    assert error["exit_status"] == 7
    assert "dispatch token create" in error["hint"]


def test_it_refuses_bad_and_revoked_tokens(raw_token: str) -> None:
    bad = Client(headers={"Authorization": "Bearer dsp_nottherighttoken"})
    assert_error(bad.get("/api/v1/lanes"), 401, "unauthorized")
    basic = Client(headers={"Authorization": f"Basic {raw_token}"})
    assert_error(basic.get("/api/v1/lanes"), 401, "unauthorized")
    api_token_revoke(name="tests")
    revoked = Client(headers={"Authorization": f"Bearer {raw_token}"})
    assert_error(revoked.get("/api/v1/lanes"), 401, "unauthorized")


def test_it_lists_lanes(api: Client, alpha: Lane) -> None:
    response = api.get("/api/v1/lanes")
    assert response.status_code == 200
    [row] = response.json()["lanes"]
    assert row["ref"] == alpha.ref
    assert row["handle"] == "@alpha"
    assert row["status"] == "idle"


def test_it_reads_query_parameters_for_get(api: Client, alpha: Lane) -> None:
    Lane.objects.filter(pk=alpha.pk).update(status=Lane.Status.ARCHIVED)
    assert api.get("/api/v1/lanes").json()["lanes"] == []
    shown = api.get("/api/v1/lanes?include_archived=true").json()["lanes"]
    assert [r["ref"] for r in shown] == [alpha.ref]


def test_it_shows_one_lane_by_any_selector(api: Client, alpha: Lane) -> None:
    for selector in (alpha.ref, alpha.thread_id, "alpha", "%40alpha"):
        response = api.get(f"/api/v1/lanes/{selector}")
        assert response.status_code == 200, selector
        assert response.json()["ref"] == alpha.ref
        assert response.json()["queue"]["pending"] == 0


def test_it_answers_unknown_lanes_with_404(api: Client) -> None:
    error = assert_error(api.get("/api/v1/lanes/nope"), 404, "not_found")
    assert error["exit_status"] == 4
    assert "nope" in error["message"]
    assert error["hint"]


def test_it_answers_unknown_paths_in_the_same_shape(api: Client) -> None:
    assert_error(api.get("/api/v1/no/such/route"), 404, "not_found")


def test_it_maps_query_validation_to_400(api: Client, alpha: Lane) -> None:
    error = assert_error(
        api.get(f"/api/v1/lanes/{alpha.ref}?max_items=0"), 400, "validation"
    )
    assert error["exit_status"] == 2
    assert "max_items" in error["message"]


def test_it_maps_body_validation_to_400(api: Client, alpha: Lane) -> None:
    url = f"/api/v1/lanes/{alpha.ref}/send"
    missing = assert_error(
        api.post(url, {}, content_type="application/json"), 400, "validation"
    )
    assert "text" in missing["message"]
    extra = assert_error(
        api.post(url, {"text": "hi", "bogus": 1}, content_type="application/json"),
        400,
        "validation",
    )
    assert "bogus" in extra["message"]
    bad_mode = assert_error(
        api.post(url, {"text": "hi", "mode": "shout"}, content_type="application/json"),
        400,
        "validation",
    )
    assert "mode" in bad_mode["message"]
    assert_error(
        api.post(url, "{not json", content_type="application/json"), 400, "validation"
    )


def test_it_hides_internal_fields(api: Client, alpha: Lane) -> None:
    response = api.post(
        f"/api/v1/lanes/{alpha.ref}/send",
        {"text": "hi", "caller_thread_id": "x"},
        content_type="application/json",
    )
    assert_error(response, 400, "validation")
    spec = Client().get("/api/v1/openapi.json").json()
    assert "caller_thread_id" not in str(spec["components"]["schemas"]["SendBody"])


def test_it_maps_service_errors_to_their_http_status(api: Client) -> None:
    attached = lane_register(
        thread_id="thread-att", title="att", source="attached", cwd="/", host="testhost"
    )
    error = assert_error(
        api.post(
            f"/api/v1/lanes/{attached.ref}/send",
            {"text": "hi"},
            content_type="application/json",
        ),
        403,
        "authority",
    )
    assert error["exit_status"] == 7


def test_it_reports_a_missing_worker_as_503(api: Client, alpha: Lane) -> None:
    error = assert_error(
        api.post(
            f"/api/v1/lanes/{alpha.ref}/send",
            {"text": "hi"},
            content_type="application/json",
        ),
        503,
        "host_unavailable",
    )
    assert error["exit_status"] == 10
    assert "dispatch up" in error["hint"]


@pytest.mark.parametrize(
    "error_type", [e for e in errors.ERROR_TYPES if e is not errors.DispatchError]
)
def test_it_gives_every_error_type_its_status(
    api: Client, monkeypatch: pytest.MonkeyPatch, error_type: type[errors.DispatchError]
) -> None:
    def failing(op_id: str, params: dict[str, Any], ctx: Origin) -> None:
        raise error_type("boom", hint="try again", data={"k": 1})

    monkeypatch.setattr("dispatchsite.surfaces.rest.execute", failing)
    response = api.get("/api/v1/lanes")
    error = assert_error(response, error_type.http_status, error_type.code)
    assert error == {
        "code": error_type.code,
        "message": "boom",
        "exit_status": error_type.exit_status,
        "hint": "try again",
        "data": {"k": 1},
    }


@pytest.fixture
def calls(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[tuple[str, dict, Origin]]]:
    seen: list[tuple[str, dict, Origin]] = []

    def recording(op_id: str, params: dict[str, Any], ctx: Origin) -> dict[str, Any]:
        seen.append((op_id, params, ctx))
        return {"ok": True}

    monkeypatch.setattr("dispatchsite.surfaces.rest.execute", recording)
    yield seen


def test_it_merges_path_and_body_into_the_op_input(api: Client, calls: list) -> None:
    response = api.post(
        "/api/v1/lanes/@alpha/send",
        {"text": "hi", "mode": "queue"},
        content_type="application/json",
        headers={"X-Dispatch-Caller-Thread-Id": "thread-caller"},
    )
    assert response.status_code == 200
    [(op_id, params, ctx)] = calls
    assert op_id == "send"
    # Only what the client sent: defaults stay the op's own.
    assert params == {"lane": "@alpha", "text": "hi", "mode": "queue"}
    assert ctx.surface == "rest"
    assert ctx.caller_thread_id == "thread-caller"
    assert ctx.actor == "token:tests"


def test_it_accepts_an_empty_body_when_nothing_is_required(
    api: Client, calls: list
) -> None:
    assert api.generic("POST", "/api/v1/lanes/alpha/stop").status_code == 200
    assert calls[0][:2] == ("stop", {"lane": "alpha"})


def test_it_runs_any_op_through_the_generic_route(api: Client, alpha: Lane) -> None:
    response = api.post(
        "/api/v1/ops/show", {"lane": alpha.ref}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["ref"] == alpha.ref
    listed = api.generic("POST", "/api/v1/ops/roster")
    assert [r["ref"] for r in listed.json()["lanes"]] == [alpha.ref]


def test_it_validates_generic_route_bodies_with_the_op_schema(
    api: Client, alpha: Lane
) -> None:
    assert_error(api.post("/api/v1/ops/nope"), 404, "not_found")
    assert_error(
        api.post(
            "/api/v1/ops/show",
            {"lane": alpha.ref, "bogus": 1},
            content_type="application/json",
        ),
        400,
        "validation",
    )
    assert_error(
        api.post("/api/v1/ops/show", [1, 2], content_type="application/json"),
        400,
        "validation",
    )
    internal = assert_error(
        api.post(
            "/api/v1/ops/send",
            {"lane": alpha.ref, "text": "x", "caller_thread_id": "t"},
            content_type="application/json",
        ),
        400,
        "validation",
    )
    assert "X-Dispatch-Caller-Thread-Id" in internal["hint"]
    assert_error(Client().post("/api/v1/ops/roster"), 401, "unauthorized")


def test_it_lists_the_op_table(api: Client) -> None:
    rows = {row["id"]: row for row in api.get("/api/v1/ops").json()["ops"]}
    assert set(rows) == set(load_ops())
    assert rows["send"]["http"] == {
        "method": "POST",
        "path": "/api/v1/lanes/{lane}/send",
    }


def test_it_serves_the_openapi_document() -> None:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["version"] == "1"
    paths = spec["paths"]
    assert "security" not in paths["/api/v1/health"]["get"]
    send = paths["/api/v1/lanes/{lane}/send"]["post"]
    assert send["operationId"] == "send"
    assert send["security"] == [{"BearerToken": []}]
    assert send["x-dispatch-intent"] == "write"
    assert set(send["responses"]) >= {"200", "400", "401", "404", "409", "502"}
    assert Client().get("/api/v1/docs").status_code == 200


def test_it_documents_destroy_ops_as_needing_no_confirmation() -> None:
    spec = Client().get("/api/v1/openapi.json").json()
    destroy = [
        op
        for path in spec["paths"].values()
        for op in path.values()
        if op.get("x-dispatch-intent") == "destroy"
    ]
    for op in destroy:
        assert "the confirmation" in op["description"]


# -- against a real stack: daphne + worker + fake app-server ------------------


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("rest"))
    try:
        stack.start(web=True)
        yield stack
    finally:
        stack.stop()


@pytest.mark.slow
def test_it_creates_and_messages_a_lane_over_http(web_stack: Any) -> None:
    import httpx

    from tests.support.stack import wait_for

    raw = web_stack.cli_ok("token", "create", "rest-test")["token"]
    headers = {"Authorization": f"Bearer {raw}"}
    with httpx.Client(
        base_url=web_stack.web_url + "/api/v1", headers=headers, timeout=30
    ) as http:
        created = http.post(
            "/lanes", json={"name": "web", "cwd": str(web_stack.root), "send": False}
        )
        assert created.status_code == 200, created.text
        lane = created.json()
        assert lane["handle"] == "@web" and lane["message_accepted"] is False

        sent = http.post(f"/lanes/{lane['ref']}/send", json={"text": "hello over rest"})
        assert sent.status_code == 200, sent.text
        ack = sent.json()
        assert ack["op"] == "send" and ack["accepted"] is True and ack["turn_id"]

        def turn_done() -> bool:
            row = web_stack.lane_row(lane["id"])
            return row.get("latest_turn_status") == "completed"

        wait_for(turn_done, timeout=20, what="the turn to complete")
        busy = http.post(f"/lanes/{lane['ref']}/stop")
        assert busy.status_code == 400
        assert busy.json()["error"]["code"] == "validation"
        assert (
            http.get("/lanes", headers={"Authorization": "Bearer x"}).status_code == 401
        )

    with web_stack.db() as conn:
        surfaces = dict(conn.execute("SELECT op, surface FROM lanes_auditentry"))
    assert surfaces["send"] == "rest"
