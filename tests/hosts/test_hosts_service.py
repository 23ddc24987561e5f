"""Host choice, `lane move` refusals and the host_unavailable error, in-process
against a scripted gateway (the two-host test runs the real thing)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from dispatchsite.core.errors import (
    HostUnavailableError,
    LaneBusyError,
    NotFoundError,
    ValidationError,
)
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import execute
from lanes.models import AuditEntry, Lane, WorkerLease
from lanes.services import lane_register
from lanes.services.hosts import host_choose, hosts_overview
from lanes.worker import gateway

pytestmark = pytest.mark.django_db
CTX = Origin(surface="test")


def lease(host: str, *, age: float = 0.0, version: str = "0.169.0") -> None:
    WorkerLease.objects.create(
        host=host,
        pid=100,
        app_server_version=version,
        heartbeat_at=timezone.now() - timedelta(seconds=age),
    )


def lane_on(host: str, title: str, *, busy: bool = False) -> Lane:
    lane = lane_register(
        thread_id=f"thread-{title}", title=title, source="own", cwd="/", host=host
    )
    if busy:
        Lane.objects.filter(pk=lane.pk).update(status="busy", active_turn_id="t1")
        lane.refresh_from_db()
    return lane


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    made: list[tuple[str, str]] = []

    def rpc(host: str, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
        gateway.require_worker(host)
        made.append((host, method))
        if method == "thread/resume" and host == "norollout":
            raise gateway.RpcFailed(
                f"app-server error: no rollout found for thread id {params['threadId']}"
            )
        return {}

    monkeypatch.setattr(gateway, "rpc", rpc)
    monkeypatch.setattr(gateway, "notify_worker", lambda host, message: None)
    monkeypatch.setattr(gateway, "_lease_checked_until", {})
    return made


def test_it_chooses_the_least_loaded_live_host(settings: Any) -> None:
    settings.DISPATCH_HOST = "a"
    assert host_choose(None) == "a"  # nothing live: this machine
    lease("a")
    lease("b")
    lease("dead", age=60)
    lane_on("a", "one")
    assert host_choose(None) == "b"
    lane_on("b", "two", busy=True)
    assert host_choose(None) == "a"  # fewer running turns wins
    assert host_choose("b") == "b"
    with pytest.raises(HostUnavailableError) as caught:
        host_choose("dead")
    assert caught.value.exit_status == 10 and caught.value.http_status == 503
    assert caught.value.data["live_hosts"] == ["a", "b"]
    with pytest.raises(ValidationError):
        host_choose("no spaces")


def test_it_lists_hosts_with_lease_age_version_and_lanes() -> None:
    lease("a", version="0.171.0")
    lease("b", age=60)
    lane_on("a", "one")
    lane_on("orphan", "two")
    hosts = {h["host"]: h for h in hosts_overview()}
    assert hosts["a"]["live"] and hosts["a"]["app_server_version"] == "0.171.0"
    assert hosts["a"]["lanes"] == 1 and hosts["a"]["lease_age_s"] < 5
    assert not hosts["b"]["live"] and hosts["b"]["lease_age_s"] >= 60
    assert hosts["orphan"] == {**hosts["orphan"], "live": False, "lease_age_s": None}


def test_it_answers_host_unavailable_for_a_lane_whose_host_is_gone(
    calls: list[tuple[str, str]],
) -> None:
    lane = lane_on("gone", "stranded")
    with pytest.raises(HostUnavailableError) as caught:
        execute("send", {"lane": lane.ref, "text": "hi"}, CTX)
    assert "'gone'" in caught.value.message
    assert "lane move" in caught.value.hint
    assert calls == []


def test_it_refuses_moves_that_cannot_work(calls: list[tuple[str, str]]) -> None:
    lease("a")
    lease("norollout")
    lane = lane_on("a", "here")
    with pytest.raises(ValidationError, match="already on host"):
        execute("lane-move", {"lane": lane.ref, "host": "a"}, CTX)
    with pytest.raises(HostUnavailableError):
        execute("lane-move", {"lane": lane.ref, "host": "nowhere"}, CTX)
    with pytest.raises(NotFoundError) as missing:
        execute("lane-move", {"lane": lane.ref, "host": "norollout"}, CTX)
    assert "CODEX_HOME" in missing.value.message
    busy = lane_on("a", "busy", busy=True)
    lease("b")
    with pytest.raises(LaneBusyError):
        execute("lane-move", {"lane": busy.ref, "host": "b"}, CTX)
    assert Lane.objects.get(pk=lane.pk).host == "a"
    assert Lane.objects.get(pk=busy.pk).host == "a"
    outcomes = set(
        AuditEntry.objects.filter(op="lane-move").values_list("outcome", flat=True)
    )
    assert outcomes == {"validation", "host_unavailable", "not_found", "lane_busy"}


def test_it_moves_a_lane_and_releases_it_on_the_old_host(
    calls: list[tuple[str, str]],
) -> None:
    lease("a")
    lease("b")
    lane = lane_on("a", "mover")
    moved = execute("lane-move", {"lane": lane.ref, "host": "b"}, CTX)
    assert moved["host"] == "b" and moved["moved_from"] == "a"
    assert calls == [("b", "thread/resume"), ("a", "thread/unsubscribe")]
    assert AuditEntry.objects.get(op="lane-move", outcome="ok").detail == "a -> b"
