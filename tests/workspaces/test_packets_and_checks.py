"""Saved packets (versions, launch by name) and checked output on `get`/`history`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lanes.journal.eventstore import EventRow
from lanes.signals import lane_events_journaled
from tests.workspaces.conftest import Codex, cli, write_packet
from workspaces.models import LaneLaunch, Packet

pytestmark = pytest.mark.django_db
Capsys = pytest.CaptureFixture[str]
SCHEMA = (
    '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}'
)


def test_it_versions_saved_packets_and_lanes_keep_their_version(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    folder = write_packet(tmp_path / "pk", prompt_dot_md="v1 prompt")
    status, saved, err = cli(capsys, "packet", "save", "review", str(folder))
    assert status == 0, err
    assert (saved["name"], saved["version"]) == ("review", 1)
    status, again, _ = cli(capsys, "packet", "save", "review", str(folder))
    assert again["version"] == 1  # unchanged files: no new version
    status, first, err = cli(
        capsys, "new", "--name", "one", "--cwd", str(tmp_path), "--packet", "review"
    )
    assert status == 0, err
    (folder / "prompt.md").write_text("v2 prompt")
    status, saved, _ = cli(capsys, "packet", "save", "review", str(folder))
    assert saved["version"] == 2
    status, second, err = cli(
        capsys, "new", "--name", "two", "--cwd", str(tmp_path), "--packet", "review"
    )
    assert status == 0, err
    texts = [p["input"][0]["text"] for p in codex.params("turn/start")]
    assert texts == ["v1 prompt", "v2 prompt"]
    status, got, _ = cli(capsys, "get", first["ref"])
    assert (got["launch"]["packet"]["name"], got["launch"]["packet"]["version"]) == (
        "review",
        1,
    )
    status, listed, _ = cli(capsys, "packet", "list")
    assert [(p["name"], p["version"], p["versions"]) for p in listed["packets"]] == [
        ("review", 2, 2)
    ]
    status, shown, _ = cli(capsys, "packet", "show", "review@v1")
    assert shown["files"][0]["text"] == "v1 prompt"
    status, _, err = cli(capsys, "packet", "show", "nope")
    assert status == 4
    # A version too long for int() is no version, not a crash.
    status, _, err = cli(capsys, "packet", "show", "review@v" + "9" * 5000)
    assert status == 4 and "no saved packet" in err["message"]
    status, _, err = cli(
        capsys, "new", "--name", "x", "--cwd", str(tmp_path), "--packet", "nope"
    )
    assert status == 2 and "no saved packet has that name" in err["message"]
    status, _, err = cli(capsys, "packet", "save", "bad/name", str(folder))
    assert status == 2 and "packet name" in err["message"]


def turn_completed(thread_id: str, turn_id: str, text: str | None) -> EventRow:
    items = [] if text is None else [{"type": "agentMessage", "id": "m", "text": text}]
    return EventRow(
        thread_id=thread_id,
        seq=1,
        method="turn/completed",
        params={
            "threadId": thread_id,
            "turn": {"id": turn_id, "status": "completed", "items": items},
        },
        turn_id=turn_id,
        item_id="",
        request_id=None,
        received_at=datetime.now(UTC),
    )


def journal(*rows: EventRow) -> None:
    lane_events_journaled.send(sender=None, rows=list(rows))


def checks(capsys: Capsys, ref: str) -> list[tuple[Any, Any, Any]]:
    status, got, err = cli(capsys, "get", ref)
    assert status == 0, err
    return [(c["turn_id"], c["output_valid"], c["error"]) for c in got["output_checks"]]


def test_it_checks_each_completed_turn_against_the_output_schema(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    status, lane, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--text",
        "go",
        "--output-schema",
        SCHEMA,
    )
    assert status == 0, err
    status, plain, _ = cli(
        capsys, "new", "--name", "b", "--cwd", str(tmp_path), "--text", "go"
    )
    journal(
        turn_completed(lane["id"], "t1", '{"n": 1}'),
        turn_completed(lane["id"], "t2", '{"n": "one"}'),
        turn_completed(lane["id"], "t3", "not json"),
        turn_completed(lane["id"], "t4", None),
        turn_completed(plain["id"], "t5", "anything"),
    )
    journal(turn_completed(lane["id"], "t1", '{"n": 1}'))  # a replayed batch
    assert checks(capsys, lane["ref"]) == [
        ("t1", True, None),
        ("t2", False, "n: 'one' is not of type 'integer'"),
        ("t3", False, "the final message is not JSON: Expecting value at line 1"),
        ("t4", False, "the turn ended without a final agent message"),
    ]
    assert checks(capsys, plain["ref"]) == []
    status, history, err = cli(capsys, "history", lane["ref"])
    assert status == 0, err
    assert [c["output_valid"] for c in history["output_checks"]] == [
        True,
        False,
        False,
        False,
    ]
    schema = LaneLaunch.objects.get(lane__ref=lane["ref"]).output_schema
    assert schema is not None and schema["required"] == ["n"]
    assert Packet.objects.count() == 0  # no packet: nothing saved as one
