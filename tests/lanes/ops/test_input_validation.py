"""Bad input is refused before any side effect, as the error it is.

Runs in-process against a scripted worker: requests go through the real
gateway (`call_worker`), so the app-server's answers are classified exactly
as in production. The scripted error texts are the ones codex 0.169 sends.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from dispatchsite.core.errors import (
    AppServerError,
    LaneBusyError,
    NotFoundError,
    ValidationError,
)
from dispatchsite.core.origin import Origin
from lanes import services
from lanes.models import AuditEntry, Lane, ModelCatalogEntry
from lanes.tokens import api_token_create
from lanes.worker import gateway
from tests.support.scripted_worker import Worker, says

pytestmark = pytest.mark.django_db
CTX = Origin(surface="test")
INVALID_POLICY = (
    "Invalid request: unknown variant `bogus`, expected one of `untrusted`, "
    "`on-request`, `granular`, `never`"
)


@pytest.fixture
def api() -> Client:
    raw = api_token_create(name="validation")[1]
    return Client(headers={"Authorization": f"Bearer {raw}"})


def post(api: Client, path: str, body: dict[str, Any]) -> Any:
    return api.post(path, json.dumps(body), content_type="application/json")


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = json.loads(response.content)["error"]
    assert error["code"] == code, error
    return error


def lane(title: str = "alpha", **fields: Any) -> Lane:
    made = services.lane_register(
        thread_id=str(uuid.uuid4()), title=title, source="own", cwd="/tmp", host="t"
    )
    if fields:
        Lane.objects.filter(pk=made.pk).update(**fields)
        made.refresh_from_db()
    return made


# -- cwd (items 6 and 8) -------------------------------------------------------


@pytest.mark.parametrize(
    ("cwd", "words"),
    [
        ("/" + "x" * 1100, "1024"),
        ("relative/dir", "pattern"),
        ("/tmp/\x00", "NUL"),
        ("", "at least 1"),
    ],
)
def test_it_refuses_a_bad_cwd_before_starting_a_thread(
    api: Client, worker: Worker, cwd: str, words: str
) -> None:
    error = error_of(
        post(api, "/api/v1/lanes", {"name": "a", "cwd": cwd}), 400, "validation"
    )
    assert "cwd" in error["message"] and words in error["message"]
    assert worker.calls == []
    assert not Lane.objects.exists()


@pytest.mark.parametrize("kind", ["missing", "file", "relative", "long"])
def test_it_checks_cwd_in_the_service_before_thread_start(
    worker: Worker, tmp_path: Path, kind: str
) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cwd = {
        "missing": str(tmp_path / "nope"),
        "file": str(a_file),
        "relative": "rel",
        "long": "/" + "y" * 1025,
    }[kind]
    with pytest.raises(ValidationError, match="cwd"):
        services.lane_create(
            name="a",
            cwd=cwd,
            text=None,
            goal=None,
            send=False,
            model=None,
            sandbox=None,
            approval_policy=None,
            effort=None,
            origin=CTX,
        )
    assert worker.calls == []
    assert not Lane.objects.exists()


def test_it_refuses_a_fork_into_a_missing_directory_before_forking(
    worker: Worker, tmp_path: Path
) -> None:
    origin = lane()
    with pytest.raises(ValidationError, match="does not exist"):
        services.lane_fork(
            lane=origin,
            name="b",
            cwd=str(tmp_path / "nope"),
            model=None,
            sandbox=None,
            approval_policy=None,
            effort=None,
            last_turn_id=None,
            origin=CTX,
        )
    assert "thread/fork" not in worker.methods()
    assert Lane.objects.count() == 1


# -- names (item 8) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "\x1b[31mred",
        "nul\x00",
        "evil\u202etxt.exe",
        "iso\u2066late",
        "mark\u200f",
        "line\nbreak",
        "",
        "   ",
        "@@alpha",
        "x" * 202,
        "019a0000-0000-7000-8000-000000000001",
    ],
)
def test_it_refuses_a_lane_name_that_would_not_read_as_itself(
    api: Client, worker: Worker, tmp_path: Path, name: str
) -> None:
    response = post(api, "/api/v1/lanes", {"name": name, "cwd": str(tmp_path)})
    error = error_of(response, 400, "validation")
    assert "name" in error["message"]
    assert worker.calls == []
    assert not Lane.objects.exists()


def test_it_refuses_a_name_that_is_another_lanes_ref(
    worker: Worker, tmp_path: Path
) -> None:
    other = lane()
    with pytest.raises(ValidationError, match="ref"):
        services.lane_fork(
            lane=other,
            name=other.ref,
            cwd=None,
            model=None,
            sandbox=None,
            approval_policy=None,
            effort=None,
            last_turn_id=None,
            origin=CTX,
        )
    assert worker.calls == []


def test_it_refuses_a_rename_to_an_ansi_escape(api: Client, worker: Worker) -> None:
    alpha = lane()
    response = post(
        api, f"/api/v1/threads/{alpha.ref}/rename", {"new": "\x1b]0;pwned\x07"}
    )
    error = error_of(response, 400, "validation")
    assert "control character" in error["message"]
    assert worker.calls == []
    assert Lane.objects.get().title == "alpha"


# -- settings (items 7 and 8) ----------------------------------------------------


def test_it_refuses_an_unknown_approval_policy_before_thread_start(
    api: Client, worker: Worker, tmp_path: Path
) -> None:
    body = {"name": "a", "cwd": str(tmp_path), "approval_policy": "bogus"}
    error = error_of(post(api, "/api/v1/lanes", body), 400, "validation")
    assert "approval_policy" in error["message"] and "on-request" in error["message"]
    assert worker.calls == []


def test_it_refuses_an_effort_no_model_offers(
    api: Client, worker: Worker, tmp_path: Path
) -> None:
    body = {"name": "a", "cwd": str(tmp_path), "effort": "infinite"}
    error = error_of(post(api, "/api/v1/lanes", body), 400, "validation")
    assert "effort" in error["message"] and "xhigh" in error["message"]
    # Only the model catalog was asked; no thread was started.
    assert "thread/start" not in worker.methods()
    assert not Lane.objects.exists()


def started(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "thread": {"id": str(uuid.uuid4())},
        "cwd": params["cwd"],
        "model": "m1",
        "modelProvider": "mock",
    }


def create(tmp_path: Path, name: str = "made", **settings: Any) -> Lane:
    result = services.lane_create(
        name=name,
        cwd=str(tmp_path),
        text=None,
        goal=None,
        send=False,
        model=settings.get("model"),
        sandbox=None,
        approval_policy=settings.get("approval_policy"),
        effort=settings.get("effort"),
        origin=CTX,
    )
    lane_made: Lane = result["lane"]
    return lane_made


def test_it_accepts_the_efforts_a_model_advertises(
    worker: Worker, tmp_path: Path
) -> None:
    ModelCatalogEntry.objects.create(
        provider="mock",
        model_id="m1",
        data={"id": "m1", "supportedReasoningEfforts": [{"reasoningEffort": "max"}]},
    )
    worker.handlers["thread/start"] = started
    worker.handlers["thread/name/set"] = lambda params: {}

    made = create(tmp_path, model="m1", effort="max", approval_policy="never")

    assert made.runtime_settings["effort"] == "max"
    start = dict(worker.calls)["thread/start"]
    assert start["approvalPolicy"] == "never" and start["cwd"] == str(tmp_path)
    with pytest.raises(ValidationError, match="'high' is not one the model"):
        create(tmp_path, "other", model="m1", effort="high")


def test_it_accepts_a_standard_effort_for_a_model_the_catalog_lacks(
    worker: Worker, tmp_path: Path
) -> None:
    worker.handlers["thread/start"] = started
    worker.handlers["thread/name/set"] = lambda params: {}
    assert create(tmp_path, effort="low").runtime_settings["effort"] == "low"


# -- strict types and exact schemas (item 8) --------------------------------------


def test_it_refuses_numbers_and_strings_for_booleans(api: Client) -> None:
    alpha = lane()
    error = error_of(
        post(api, f"/api/v1/lanes/{alpha.ref}/sync", {"full": 0}), 400, "validation"
    )
    assert "full" in error["message"]
    error = error_of(
        post(api, "/api/v1/lanes", {"name": "a", "cwd": "/tmp", "send": "false"}),
        400,
        "validation",
    )
    assert "send" in error["message"]
    # A query string is text: it is converted, then checked.
    assert api.get("/api/v1/lanes?include_archived=true").status_code == 200
    error = error_of(api.get("/api/v1/lanes?include_archivd=true"), 400, "validation")
    assert "include_archivd" in error["message"]


def test_it_publishes_exactly_what_it_accepts(api: Client) -> None:
    spec = json.loads(api.get("/api/v1/openapi.json").content)
    schemas = spec["components"]["schemas"]

    def prop(schema: str, name: str) -> dict[str, Any]:
        found = schemas[schema]["properties"][name]
        branches = [b for b in found.get("anyOf", [found]) if b.get("type") != "null"]
        return branches[0]

    assert prop("NewBody", "name")["minLength"] == 1
    assert prop("NewBody", "approval_policy")["enum"] == [
        "untrusted",
        "on-request",
        "never",
    ]
    cwd = prop("NewBody", "cwd")
    assert cwd["maxLength"] == 1024 and cwd["pattern"] == "^/"
    assert prop("SendBody", "text")["minLength"] == 1
    # Every string an op takes is bounded; every required one is non-empty.
    from dispatchsite.core.registry import load_ops

    for op in load_ops().values():
        schema = op.input_schema()
        for name, found in schema.get("properties", {}).items():
            for branch in found.get("anyOf", [found]):
                if branch.get("type") == "string" and "enum" not in branch:
                    assert "maxLength" in branch, (op.id, name)
                if branch.get("type") == "integer":
                    assert "maximum" in branch, (op.id, name)
            required = name in schema.get("required", [])
            if required and found.get("type") == "string" and "enum" not in found:
                assert found.get("minLength", 0) >= 1, (op.id, name)


# -- thread ids and app-server answers (item 7) ----------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/threads/%2500/restore",
        "/api/v1/threads/0/archive",
        "/api/v1/threads/not-a-uuid/restore",
    ],
)
def test_it_answers_404_for_a_target_that_is_no_lane_and_no_thread_id(
    api: Client, worker: Worker, path: str
) -> None:
    error = error_of(post(api, path, {}), 404, "not_found")
    assert "not a Codex thread id" in error["message"]
    assert worker.calls == []
    assert AuditEntry.objects.get().outcome == "not_found"


@pytest.mark.parametrize("thread", ["0", "not-a-uuid", "@alpha"])
def test_it_refuses_to_attach_a_malformed_thread_id(
    api: Client, worker: Worker, thread: str
) -> None:
    error = error_of(
        post(api, "/api/v1/lanes/attach", {"thread": thread}), 400, "validation"
    )
    assert "UUID" in error["message"]
    assert worker.calls == []
    assert not Lane.objects.exists()


def test_it_answers_404_for_attaching_an_unknown_thread(
    api: Client, worker: Worker
) -> None:
    unknown = "019a0000-0000-7000-8000-000000000000"
    worker.handlers["thread/read"] = says(f"thread not loaded: {unknown}")
    error = error_of(
        post(api, "/api/v1/lanes/attach", {"thread": unknown}), 404, "not_found"
    )
    assert "no lane registered" in error["message"]
    assert not Lane.objects.exists()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (INVALID_POLICY, ValidationError),
        ("invalid thread id: invalid length: expected length 32", ValidationError),
        (
            "invalid session id: invalid character: expected an optional",
            ValidationError,
        ),
        ("thread not found: 019a", NotFoundError),
        ("no rollout found for thread id 019a", NotFoundError),
        ("cannot steer a compact turn", LaneBusyError),
        ("model provider exploded", AppServerError),
    ],
)
def test_it_maps_app_server_answers_to_what_they_mean(
    worker: Worker, text: str, kind: type[Exception]
) -> None:
    worker.handlers["thread/start"] = says(text)
    with pytest.raises(kind) as caught:
        gateway.rpc("t", "thread/start", {})
    assert caught.value.code == kind.code  # type: ignore[attr-defined]
    # Callers that recover from one answer still catch it as an RpcFailed.
    assert isinstance(caught.value, gateway.RpcFailed)


def test_it_keeps_a_missing_method_an_app_server_limit(worker: Worker) -> None:
    with pytest.raises(AppServerError) as caught:
        gateway.rpc("t", "thread/rollback", {})
    assert caught.value.code == "app_server"


def test_it_answers_409_to_a_send_while_a_compaction_runs(
    api: Client, worker: Worker
) -> None:
    busy = lane(status="busy", active_turn_id="turn-compaction")
    worker.handlers["turn/start"] = says("cannot steer a compact turn")

    response = post(api, f"/api/v1/lanes/{busy.ref}/send", {"text": "hello"})

    error = error_of(response, 409, "lane_busy")
    assert error["exit_status"] == 5
    assert "--queue" in error["hint"]
    busy.refresh_from_db()
    assert busy.status == "busy" and busy.latest_error == ""
    assert AuditEntry.objects.get(op="send").outcome == "lane_busy"
