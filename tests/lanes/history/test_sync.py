"""`dispatch sync`: paged, bounded, resumable history into the item index.

Unit tests drive the sync service against an in-memory Codex that pages
like 0.169 (opaque cursors anchored on rollout positions); process tests run
the real CLI against a stack with the fake and with the real codex.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from dispatchsite.core.errors import CapabilityUnavailableError, LaneBusyError
from dispatchsite.core.origin import Origin
from lanes.history.sync import lane_sync, sync_run
from lanes.journal.indexing import index_messages
from lanes.models import Lane
from lanes.models.index import LaneItem, LaneSyncState, LaneTurn
from lanes.services import lane_register
from lanes.worker import gateway
from tests.support.foreign import foreign_thread
from tests.support.stack import Stack

TEST_ORIGIN = Origin(surface="test")
THREAD = "019a0000-0000-7000-8000-0000000000aa"


class FakeCodex:
    """One thread's history behind thread/turns/list and thread/items/list."""

    def __init__(self, thread_id: str = THREAD) -> None:
        self.thread_id = thread_id
        self.turns: list[dict[str, Any]] = []  # oldest first
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.unsupported: set[str] = set()

    def add_turn(self, items: int, *, status: str = "completed", text: str = "") -> str:
        n = len(self.turns)
        turn_id = f"turn-{n:03d}"
        self.turns.append(
            {
                "id": turn_id,
                "status": status,
                "error": None,
                "startedAt": 1796000000 + n,
                "completedAt": None if status == "inProgress" else 1796000000 + n,
                "durationMs": 10,
                "items": [self.item(turn_id, i, text) for i in range(items)],
            }
        )
        return turn_id

    def item(self, turn_id: str, i: int, text: str = "") -> dict[str, Any]:
        return {
            "type": "agentMessage",
            "id": f"{turn_id}-item-{i:03d}",
            "text": text or f"reply {i} of {turn_id}",
        }

    def rpc(self, host: str, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
        self.calls.append((method, params))
        if method in self.unsupported:
            raise gateway.RpcFailed(f"Invalid request: unknown variant `{method}`")
        if method == "thread/read":
            return {
                "thread": {
                    "id": params["threadId"],
                    "cwd": "/tmp",
                    "name": "other",
                    "status": {"type": "notLoaded"},
                }
            }
        if method == "thread/turns/list":
            return self.turns_page(params)
        if method == "thread/items/list":
            return self.items_page(params)
        raise AssertionError(f"unexpected {method}")

    def turns_page(self, params: dict[str, Any]) -> dict[str, Any]:
        assert params.get("sortDirection") == "desc"
        before = (
            json.loads(params["cursor"])["before"]
            if params.get("cursor")
            else len(self.turns)
        )
        limit = int(params.get("limit") or 10)
        start = max(0, before - limit)
        chunk = list(reversed(self.turns[start:before]))
        view = params.get("itemsView") or "summary"
        data = [
            dict(t, items=t["items"] if view == "full" else [], itemsView=view)
            for t in chunk
        ]
        return {
            "data": data,
            "nextCursor": json.dumps({"before": start}) if start else None,
        }

    def items_page(self, params: dict[str, Any]) -> dict[str, Any]:
        turn = next(t for t in self.turns if t["id"] == params["turnId"])
        after = json.loads(params["cursor"])["after"] if params.get("cursor") else 0
        limit = int(params.get("limit") or 50)
        chunk = turn["items"][after : after + limit]
        more = after + limit < len(turn["items"])
        return {
            "data": [{"turnId": turn["id"], "item": item} for item in chunk],
            "nextCursor": json.dumps({"after": after + limit}) if more else None,
        }

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


@pytest.fixture
def codex(monkeypatch: pytest.MonkeyPatch) -> FakeCodex:
    fake = FakeCodex()
    monkeypatch.setattr(gateway, "rpc", fake.rpc)
    return fake


@pytest.fixture
def lane(db: None) -> Lane:
    return lane_register(
        thread_id=THREAD, title="synced", source="attached", cwd="/tmp", host="testhost"
    )


def sync(lane: Lane, **kwargs: Any) -> dict[str, Any]:
    return sync_run(selector=lane.ref, origin=TEST_ORIGIN, **kwargs)["sync"]


def item_ids() -> list[str]:
    return sorted(LaneItem.objects.values_list("item_id", flat=True))


def test_it_indexes_a_whole_history(codex: FakeCodex, lane: Lane) -> None:
    for _ in range(5):
        codex.add_turn(3)
    view = sync(lane)
    assert view["state"] == "complete" and view["history_complete"] is True
    assert (view["turns_indexed"], view["items_indexed"]) == (5, 15)
    assert view["truncated"] is False and view["history_capability"] == "supported"
    assert len(item_ids()) == 15
    assert set(LaneItem.objects.values_list("source", flat=True)) == {"sync"}
    assert all(t.settled for t in LaneTurn.objects.all())


def test_it_only_fetches_turns_it_has_not_settled(codex: FakeCodex, lane: Lane) -> None:
    for _ in range(5):
        codex.add_turn(3)
    sync(lane)
    codex.calls.clear()
    codex.add_turn(2)
    codex.add_turn(2)
    view = sync(lane)
    assert (view["turns_indexed"], view["items_indexed"]) == (2, 4)
    assert codex.count("thread/items/list") == 2
    assert len(item_ids()) == 19
    codex.calls.clear()
    view = sync(lane)
    assert (view["turns_indexed"], view["items_indexed"]) == (0, 0)
    assert codex.count("thread/items/list") == 0


def test_it_resumes_a_sync_cut_short_until_complete(
    codex: FakeCodex, lane: Lane
) -> None:
    for _ in range(12):
        codex.add_turn(10)
    states = []
    for run in range(20):
        if run == 2:
            codex.add_turn(4)  # new work arrives while the backfill is under way
        view = sync(lane, max_items=25)
        states.append(view["state"])
        if view["state"] == "complete":
            break
    assert states[0] == "partial" and states[-1] == "complete"
    assert len(states) <= 8
    assert len(item_ids()) == 124
    assert LaneSyncState.objects.get().resume_active is False


def test_it_finishes_a_turn_larger_than_one_syncs_budget(
    codex: FakeCodex, lane: Lane
) -> None:
    codex.add_turn(250)
    first = sync(lane, max_items=100)
    assert first["truncated"] is True and first["items_indexed"] == 100
    codex.calls.clear()
    second = sync(lane, max_items=100)
    item_calls = [p for m, p in codex.calls if m == "thread/items/list"]
    assert item_calls[0].get("cursor"), "the second sync resumes inside the turn"
    assert second["items_indexed"] == 100
    third = sync(lane, max_items=100)
    assert third["state"] == "complete"
    assert len(item_ids()) == 250


def test_it_stops_at_the_byte_budget_and_continues_later(
    codex: FakeCodex, lane: Lane
) -> None:
    for _ in range(6):
        codex.add_turn(2, text="x" * 2000)
    first = sync(lane, max_bytes=5000)
    assert first["truncated"] is True and first["state"] == "partial"
    assert first["scanned_bytes"] > 5000 and first["items_indexed"] < 12
    for _ in range(10):
        if sync(lane, max_bytes=5000)["state"] == "complete":
            break
    assert len(item_ids()) == 12


def test_it_skips_turns_the_journal_saw_whole(codex: FakeCodex, lane: Lane) -> None:
    old = codex.add_turn(3)
    live = codex.add_turn(3)
    index_messages(
        [
            {
                "method": "turn/started",
                "params": {"threadId": THREAD, "turn": {"id": live}},
            },
            {
                "method": "turn/completed",
                "params": {
                    "threadId": THREAD,
                    "turn": {"id": live, "status": "completed"},
                },
            },
        ]
    )
    view = sync(lane)
    assert view["unchanged_skipped"] == 1
    fetched = {p["turnId"] for m, p in codex.calls if m == "thread/items/list"}
    assert fetched == {old}


def test_it_refetches_an_unfinished_turn_once_it_finished(
    codex: FakeCodex, lane: Lane
) -> None:
    codex.add_turn(2)
    running = codex.add_turn(1, status="inProgress")
    sync(lane)
    assert len(item_ids()) == 3
    turn = codex.turns[-1]
    turn.update(status="completed", completedAt=1796000099)
    turn["items"].append(codex.item(running, 1))
    view = sync(lane)
    assert view["items_indexed"] == 2 and len(item_ids()) == 4
    assert LaneSyncState.objects.get().head_turn_id == running


def test_it_refetches_everything_with_full(codex: FakeCodex, lane: Lane) -> None:
    codex.add_turn(2)
    sync(lane)
    codex.turns[0]["items"][0]["text"] = "edited upstream"
    sync(lane)
    assert not LaneItem.objects.filter(text="edited upstream").exists()
    view = sync(lane, full=True)
    assert view["items_indexed"] == 2 and view["state"] == "complete"
    assert LaneItem.objects.filter(text="edited upstream").exists()


def test_it_falls_back_to_turn_pages_without_item_paging(
    codex: FakeCodex, lane: Lane
) -> None:
    codex.unsupported.add("thread/items/list")
    for _ in range(3):
        codex.add_turn(4)
    view = sync(lane)
    assert view["history_capability"] == "turn-page-fallback"
    assert view["state"] == "complete" and len(item_ids()) == 12


def test_it_reports_a_codex_without_turn_paging(codex: FakeCodex, lane: Lane) -> None:
    codex.unsupported.add("thread/turns/list")
    with pytest.raises(CapabilityUnavailableError):
        lane_sync(lane=lane, origin=TEST_ORIGIN)
    state = LaneSyncState.objects.get()
    assert (state.state, state.capability) == ("error", "unsupported")
    assert state.running_until is None


def test_it_refuses_a_second_concurrent_sync(codex: FakeCodex, lane: Lane) -> None:
    LaneSyncState.objects.create(
        thread_id=THREAD, running_until=timezone.now() + timedelta(seconds=60)
    )
    with pytest.raises(LaneBusyError):
        lane_sync(lane=lane, origin=TEST_ORIGIN)


def test_it_attaches_a_raw_thread_id_before_syncing(codex: FakeCodex, db: None) -> None:
    codex.add_turn(2)
    out = sync_run(selector=THREAD, origin=TEST_ORIGIN)
    assert out["registered"] is True and out["source"] == "attached"
    assert out["sync"]["state"] == "complete" and out["sync"]["items_indexed"] == 2
    again = sync_run(selector=THREAD, origin=TEST_ORIGIN)
    assert again["registered"] is False and again["ref"] == out["ref"]


# -- process level: the CLI against the fake and the real codex ------------------------


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def test_it_syncs_a_thread_another_client_started(stack: Stack, tmp_path: Path) -> None:
    thread_id = foreign_thread(
        stack, cwd=tmp_path, texts=["first words: kilimanjaro", "second words"]
    )
    out = stack.cli_ok("sync", thread_id)
    assert out["registered"] is True and out["source"] == "attached"
    assert out["id"] == thread_id
    view = out["sync"]
    assert view["state"] == "complete" and view["turns_indexed"] == 2
    assert view["items_indexed"] >= 4 and view["pages_scanned"] >= 3
    items = stack.cli_ok("history", out["ref"], "--view", "items")["items"]
    assert any("kilimanjaro" in item["text"] for item in items)
    assert {item["source"] for item in items} == {"sync"}
    found = stack.cli_ok("search", "kilimanjaro")["matches"]
    assert found and found[0]["ref"] == out["ref"]
    again = stack.cli_ok("sync", out["ref"])["sync"]
    assert again["items_indexed"] == 0 and again["state"] == "complete"


def test_it_reports_sync_errors_with_their_exit_status(stack: Stack) -> None:
    missing = stack.cli("sync", "019a0000-0000-7000-8000-00000000dead")
    assert missing.status in (4, 8), missing.stderr
    assert stack.cli("sync", "@nobody").status == 4
    assert stack.cli("sync", "x", "--max-items", "0").status == 2
