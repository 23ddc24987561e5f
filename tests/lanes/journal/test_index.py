"""The item index: live indexing from journal batches, FTS upkeep, journal upkeep."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from lanes.history.search.filters import ItemFilter
from lanes.history.search.index import search_index
from lanes.history.search.query import query_parse
from lanes.journal import indexing
from lanes.journal.retention import journal_compact, journal_prune
from lanes.journal.writer import SeqCounter, journal_write_batch
from lanes.models import LaneEvent
from lanes.models.index import (
    ITEM_TEXT_MAX_CHARS,
    LaneItem,
    LaneTurn,
    fts_ensure,
)

pytestmark = pytest.mark.django_db

THREAD = "019a0000-0000-7000-8000-000000000001"


def note(method: str, **params: Any) -> dict[str, Any]:
    return {"method": method, "params": {"threadId": THREAD, **params}}


def turn_messages(
    turn: str, *, output: str = "hello from the shell\n"
) -> list[dict[str, Any]]:
    user = {
        "type": "userMessage",
        "id": f"{turn}-u",
        "content": [{"type": "text", "text": "run it"}],
    }
    shell = {
        "type": "commandExecution",
        "id": f"{turn}-c",
        "command": "/bin/bash -lc ls",
        "cwd": "/tmp",
        "status": "inProgress",
        "aggregatedOutput": None,
        "commandActions": [{"type": "read", "path": "README.md"}],
    }
    agent = {"type": "agentMessage", "id": f"{turn}-a", "text": ""}
    return [
        note(
            "turn/started",
            turn={"id": turn, "status": "inProgress", "startedAt": 1796000000},
        ),
        note("item/started", turnId=turn, item=user),
        note("item/completed", turnId=turn, item=user),
        note("item/started", turnId=turn, item=shell),
        note(
            "item/commandExecution/outputDelta",
            turnId=turn,
            itemId=shell["id"],
            delta=output,
        ),
        note(
            "item/completed",
            turnId=turn,
            item=dict(shell, status="completed", aggregatedOutput=output, exitCode=0),
        ),
        note("item/started", turnId=turn, item=agent),
        note("item/agentMessage/delta", turnId=turn, itemId=agent["id"], delta="all "),
        note("item/agentMessage/delta", turnId=turn, itemId=agent["id"], delta="done"),
        note("item/completed", turnId=turn, item=dict(agent, text="all done")),
        note(
            "turn/completed",
            turn={
                "id": turn,
                "status": "completed",
                "error": None,
                "completedAt": 1796000002,
                "durationMs": 2000,
            },
        ),
    ]


def test_it_indexes_items_and_turns_from_a_journal_batch() -> None:
    journal_write_batch(turn_messages("t1"), SeqCounter())
    items = {i.item_id: i for i in LaneItem.objects.all()}
    assert set(items) == {"t1-u", "t1-c", "t1-a"}
    shell = items["t1-c"]
    assert (shell.item_type, shell.role, shell.tool, shell.status) == (
        "commandExecution",
        "tool",
        "shell",
        "completed",
    )
    assert "hello from the shell" in shell.text and "/bin/bash -lc ls" in shell.text
    assert shell.files == ["README.md"]
    assert shell.source == "live" and shell.bytes > 0
    assert items["t1-a"].text == "all done" and items["t1-a"].role == "assistant"
    assert items["t1-u"].text == "run it" and items["t1-u"].role == "user"
    turn = LaneTurn.objects.get()
    assert turn.status == "completed" and turn.duration_ms == 2000
    assert turn.live_started and turn.live_completed and turn.settled


def test_it_indexes_an_item_whose_events_span_batches() -> None:
    messages = turn_messages("t1")
    counter = SeqCounter()
    journal_write_batch(messages[:4], counter)  # shell item started, not completed
    shell = LaneItem.objects.get(item_id="t1-c")
    assert shell.status == "inProgress" and shell.completed_at is None
    started_at = shell.created_at
    turn = LaneTurn.objects.get()
    assert turn.status == "inProgress" and not turn.settled
    journal_write_batch(messages[4:], counter)
    shell.refresh_from_db()
    assert shell.status == "completed" and "hello from the shell" in shell.text
    assert shell.created_at == started_at
    assert LaneItem.objects.count() == 3
    assert LaneTurn.objects.get().settled


def test_it_replays_a_batch_without_duplicates() -> None:
    journal_write_batch(turn_messages("t1"), SeqCounter())
    indexing.index_messages(turn_messages("t1"))
    assert LaneItem.objects.count() == 3
    assert LaneTurn.objects.count() == 1


def test_it_keeps_the_journal_when_indexing_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("index bug")

    monkeypatch.setattr(indexing, "upsert_items", broken)
    journal_write_batch(turn_messages("t1"), SeqCounter())
    assert LaneEvent.objects.filter(thread_id=THREAD).count() == 11
    assert LaneItem.objects.count() == 0


def test_it_bounds_item_text_and_payload() -> None:
    output = "BEGIN " + "x" * 100_000 + " verdict: FAILED"
    journal_write_batch(turn_messages("t1", output=output), SeqCounter())
    shell = LaneItem.objects.get(item_id="t1-c")
    assert len(shell.text) <= ITEM_TEXT_MAX_CHARS
    assert shell.text.startswith("/bin/bash -lc ls\nBEGIN")
    assert shell.text.endswith("verdict: FAILED")
    assert shell.payload == {
        "type": "commandExecution",
        "id": "t1-c",
        "truncated": True,
        "bytes": shell.bytes,
    }
    assert shell.bytes > 100_000


def test_it_names_tools_and_files_of_other_item_types() -> None:
    patch = {
        "type": "fileChange",
        "id": "p1",
        "status": "completed",
        "changes": [
            {"path": "src/app.py", "kind": {"type": "update"}, "diff": "+new line"}
        ],
    }
    mcp = {
        "type": "mcpToolCall",
        "id": "m1",
        "server": "docs",
        "tool": "lookup",
        "arguments": {"file_path": "docs/x.md"},
        "status": "completed",
        "result": {"content": [{"type": "text", "text": "found it"}]},
    }
    reasoning = {
        "type": "reasoning",
        "id": "r1",
        "summary": ["thinking hard"],
        "content": [],
    }
    indexing.index_messages(
        [
            note("item/completed", turnId="t", item=patch),
            note("item/completed", turnId="t", item=mcp),
            note("item/completed", turnId="t", item=reasoning),
        ]
    )
    rows = {i.item_id: i for i in LaneItem.objects.all()}
    assert (rows["p1"].tool, rows["p1"].files) == ("apply_patch", ["src/app.py"])
    assert "+new line" in rows["p1"].text
    assert (rows["m1"].tool, rows["m1"].files, rows["m1"].role) == (
        "docs/lookup",
        ["docs/x.md"],
        "tool",
    )
    assert "found it" in rows["m1"].text
    assert (rows["r1"].role, rows["r1"].text) == ("assistant", "thinking hard")


def fts_ids(query: str) -> set[str]:
    matches, _more, _ranked = search_index(
        parsed=query_parse(query), where=ItemFilter(), limit=50, offset=0
    )
    return {m["item_id"] for m in matches}


def test_it_keeps_the_full_text_index_in_step_with_items() -> None:
    journal_write_batch(turn_messages("t1", output="zanzibar\n"), SeqCounter())
    assert fts_ids("zanzibar") == {"t1-c"}
    item = LaneItem.objects.get(item_id="t1-c")
    item.text = "mombasa"
    item.save()
    assert fts_ids("zanzibar") == set()
    assert fts_ids("mombasa") == {"t1-c"}
    item.delete()
    assert fts_ids("mombasa") == set()


def test_it_repairs_full_text_triggers_a_table_rebuild_dropped() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER lanes_laneitem_fts_ai")
    journal_write_batch(turn_messages("t1", output="zanzibar\n"), SeqCounter())
    assert fts_ids("zanzibar") == set()
    assert fts_ensure() is True
    assert fts_ids("zanzibar") == {"t1-c"}
    assert fts_ensure() is False


# -- journal upkeep ---------------------------------------------------------------


def age_events(seconds: float) -> None:
    LaneEvent.objects.update(received_at=timezone.now() - timedelta(seconds=seconds))


def test_it_compacts_old_deltas_of_completed_items_only() -> None:
    counter = SeqCounter()
    journal_write_batch(turn_messages("t1"), counter)
    # An item still streaming: its deltas must stay.
    journal_write_batch(
        [
            note("turn/started", turn={"id": "t2", "status": "inProgress"}),
            note(
                "item/started",
                turnId="t2",
                item={"type": "agentMessage", "id": "open", "text": ""},
            ),
            note("item/agentMessage/delta", turnId="t2", itemId="open", delta="par"),
            note("item/agentMessage/delta", turnId="t2", itemId="open", delta="tial"),
            note("thread/tokenUsage/updated", turnId="t2", tokenUsage={}),
        ],
        counter,
    )
    age_events(7200)
    before = list(LaneEvent.objects.values_list("seq", "method"))
    result = journal_compact(now=timezone.now(), older_than_seconds=3600)
    assert result["compacted"] == 3
    after = list(LaneEvent.objects.values_list("seq", "method"))
    removed = [m for m in before if m not in after]
    assert [m for _, m in removed] == [
        "item/commandExecution/outputDelta",
        "item/agentMessage/delta",
        "item/agentMessage/delta",
    ]
    kept = [m for _, m in after]
    assert kept.count("item/agentMessage/delta") == 2  # the open item's
    assert "turn/completed" in kept and kept.count("item/completed") == 3


def test_it_leaves_recent_deltas_alone() -> None:
    journal_write_batch(turn_messages("t1"), SeqCounter())
    assert (
        journal_compact(now=timezone.now(), older_than_seconds=3600)["compacted"] == 0
    )


def test_it_never_deletes_a_threads_newest_event_so_seq_never_repeats() -> None:
    counter = SeqCounter()
    messages = turn_messages("t1")
    # The thread's newest event is a delta of a completed item.
    journal_write_batch(messages[:-1] + [messages[7]], counter)
    top = LaneEvent.objects.order_by("-seq").first()
    assert top is not None and top.method == "item/agentMessage/delta"
    age_events(7200)
    journal_compact(now=timezone.now(), older_than_seconds=0)
    assert LaneEvent.objects.filter(seq=top.seq).exists()
    # A restarted worker (a fresh counter) continues after the old maximum.
    journal_write_batch([messages[-1]], SeqCounter())
    assert LaneEvent.objects.order_by("-seq").first().seq == top.seq + 1  # type: ignore[union-attr]


def test_it_prunes_events_past_retention_but_keeps_each_threads_newest() -> None:
    counter = SeqCounter()
    journal_write_batch(turn_messages("t1"), counter)
    age_events(10 * 86400)
    newest = LaneEvent.objects.order_by("-seq").first()
    assert journal_prune(now=timezone.now(), retention_days=0)["pruned"] == 0
    result = journal_prune(now=timezone.now(), retention_days=7)
    assert result["pruned"] == 10
    assert list(LaneEvent.objects.values_list("pk", flat=True)) == [newest.pk]  # type: ignore[union-attr]
    # The index is history's long-term form: pruning the journal keeps it.
    assert LaneItem.objects.count() == 3
    journal_write_batch(turn_messages("t2"), SeqCounter())
    seqs = list(LaneEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(11, 23))


def test_it_runs_journal_compact_from_the_cli() -> None:
    from dispatchsite.surfaces.cli import main

    journal_write_batch(turn_messages("t1"), SeqCounter())
    age_events(7200)
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(
            ["journal", "compact", "--older-than", "60", "--retention-days", "0"]
        )
    assert status == 0
    result = json.loads(out.getvalue())
    assert result["compacted"] == 3 and result["pruned"] == 0
    with redirect_stdout(io.StringIO()):
        assert main(["journal", "compact", "--older-than", "-1"]) == 2


def test_it_writes_journal_rows_the_orm_reads_back_unchanged() -> None:
    at = timezone.now() - timedelta(seconds=5)
    params = {"threadId": THREAD, "text": "naïve ünïcode", "n": [1, 2.5, None, True]}
    request = {
        "method": "item/commandExecution/requestApproval",
        "id": 7,
        "params": params,
        "_received_at": at,
    }
    result = journal_write_batch(
        [{"method": "thread/status/changed", "params": params}, request], SeqCounter()
    )
    events = list(LaneEvent.objects.order_by("seq"))
    assert [(e.seq, e.method) for e in events] == [
        (1, "thread/status/changed"),
        (2, "item/commandExecution/requestApproval"),
    ]
    assert events[0].params == params and events[0].request_id is None
    assert events[1].request_id == 7 and events[1].received_at == at
    assert LaneEvent.objects.filter(request_id__isnull=True).count() == 1
    assert [frame for _, frame in result.frames] == [e.as_frame() for e in events]


def test_it_registers_journal_upkeep_for_celery_beat() -> None:
    from dispatchsite.core.schedules import beat_entries
    from lanes.tasks import journal_maintain

    entry = next(e for e in beat_entries() if e.task == "lanes.journal_maintain")
    assert entry.name == "dispatch: journal compact + prune"
    assert entry.every_seconds == 15 * 60
    journal_write_batch(turn_messages("t1"), SeqCounter())
    age_events(7200)
    assert journal_maintain()["compacted"] == 3
