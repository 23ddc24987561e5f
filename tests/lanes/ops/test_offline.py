"""Op paths the fake app-server cannot provoke, run in-process against a
scripted gateway: no rollout yet, a future codex with thread/rollback, no
worker at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dispatchsite.core.errors import AppServerError, LaneBusyError, NotFoundError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import execute
from lanes.models import AuditEntry, Lane, ModelCatalogEntry
from lanes.services import lane_register
from lanes.worker import gateway

pytestmark = pytest.mark.django_db
CTX = Origin(surface="test")
Handler = Callable[[dict[str, Any]], Any]


@pytest.fixture
def codex(monkeypatch: pytest.MonkeyPatch) -> dict[str, Handler]:
    """Method -> handler; an unscripted method fails like codex 0.169 does."""
    handlers: dict[str, Handler] = {}

    def rpc(host: str, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
        if method not in handlers:
            raise gateway.RpcFailed(
                f"app-server error: Invalid request: unknown variant `{method}`",
                rpc_code=-32600,
            )
        return handlers[method](params)

    monkeypatch.setattr(gateway, "rpc", rpc)
    return handlers


def fail(message: str) -> Handler:
    def handler(params: dict[str, Any]) -> Any:
        raise gateway.RpcFailed(f"app-server error: {message}", rpc_code=-32600)

    return handler


def owned(title: str = "fresh") -> Lane:
    return lane_register(
        thread_id=f"thread-{title}", title=title, source="own", cwd="/", host="testhost"
    )


def test_it_archives_and_restores_locally_when_codex_has_no_rollout(
    codex: dict[str, Handler],
) -> None:
    lane = owned()
    codex["thread/archive"] = fail(f"no rollout found for thread id {lane.thread_id}")
    codex["thread/unarchive"] = fail(f"no rollout found for thread id {lane.thread_id}")

    out = execute("archive", {"target": lane.ref}, CTX)
    assert out["status"] == "archived" and out["managed"] is True
    out = execute("restore", {"target": lane.ref}, CTX)
    assert out["status"] == "idle"
    details = list(AuditEntry.objects.values_list("op", "outcome", "detail"))
    assert details[1][:2] == ("archive", "ok") and "locally" in details[1][2]


def test_it_never_archives_locally_for_an_unmanaged_thread(
    codex: dict[str, Handler],
) -> None:
    codex["thread/read"] = fail("thread not found: raw-id")
    with pytest.raises(NotFoundError):
        execute("archive", {"target": "raw-id"}, CTX)
    assert not Lane.objects.exists()
    assert AuditEntry.objects.get().outcome == "not_found"


def test_it_rolls_back_when_codex_offers_the_method(codex: dict[str, Handler]) -> None:
    lane = owned()
    seen: list[dict[str, Any]] = []

    def rollback(params: dict[str, Any]) -> Any:
        seen.append(params)
        return {}

    codex["thread/rollback"] = rollback
    out = execute("rollback", {"lane": lane.ref, "turns": 2}, CTX)
    assert out["turns"] == 2 and out["status"] == "idle"
    assert seen == [{"threadId": lane.thread_id, "numTurns": 2}]


def test_it_refuses_rollback_and_compact_on_a_busy_lane(
    codex: dict[str, Handler],
) -> None:
    lane = owned()
    Lane.objects.filter(pk=lane.pk).update(status="busy", active_turn_id="turn-1")
    for op in ("rollback", "compact"):
        with pytest.raises(LaneBusyError):
            execute(op, {"lane": lane.ref}, CTX)


def test_it_shows_the_cached_catalog_when_the_worker_is_down(
    codex: dict[str, Handler],
) -> None:
    def down(params: dict[str, Any]) -> Any:
        raise AppServerError("no dispatch worker is running for host 'testhost'")

    codex["config/read"] = down
    out = execute("models", {"refresh": False}, CTX)
    assert out["catalog_state"] == "empty" and "dispatch models" in out["hint"]

    ModelCatalogEntry.objects.create(
        provider="mock", model_id="m1", data={"id": "m1", "hidden": True}
    )
    out = execute("models", {"refresh": False, "include_hidden": True}, CTX)
    assert [m["id"] for m in out["models"]] == ["m1"]
    assert out["source"] == "registry" and "unavailable" in out["hint"]
    assert out["configured_default"]["model"] is None


def test_it_drops_models_codex_stopped_listing(codex: dict[str, Handler]) -> None:
    codex["config/read"] = lambda params: {"config": {"model_provider": "mock"}}
    pages = {
        None: {"data": [{"id": "a", "isDefault": True}], "nextCursor": "2"},
        "2": {
            "data": [
                {
                    "id": "b",
                    "serviceTiers": [
                        {"id": "priority", "name": "Fast", "description": "quick"}
                    ],
                }
            ],
            "nextCursor": None,
        },
    }
    codex["model/list"] = lambda params: pages[params.get("cursor")]
    out = execute("models", {}, CTX)
    assert [m["id"] for m in out["models"]] == ["a", "b"]
    assert out["models"][1]["aliases"] == {"fast": "priority"}

    pages[None] = {"data": [{"id": "a", "isDefault": True}], "nextCursor": None}
    out = execute("models", {}, CTX)
    assert [m["id"] for m in out["models"]] == ["a"]
