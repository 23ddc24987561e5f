"""The CLI for people: `--format table`, `--json`, and help that tells the truth."""

from __future__ import annotations

import json

import pytest

from dispatchsite.surfaces.cli import build_parser, main
from dispatchsite.surfaces.formatting import table_text
from lanes.models import Lane, QueuedMessage
from lanes.services import lane_register


@pytest.fixture
def lanes(db: None) -> list[Lane]:
    return [
        lane_register(
            thread_id=f"thread-{name}", title=name, source="own", cwd="/srv", host="h"
        )
        for name in ("alpha", "beta")
    ]


def test_it_prints_json_by_default_and_with_json(
    lanes: list[Lane],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["list"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [lane["handle"] for lane in plain["lanes"]] == ["@alpha", "@beta"]
    monkeypatch.setenv("DISPATCH_FORMAT", "table")
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == plain


@pytest.mark.parametrize("how", ["flag", "env"])
def test_it_prints_a_table_for_list_verbs(
    how: str,
    lanes: list[Lane],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["list"]
    if how == "flag":
        argv += ["--format", "table"]
    else:
        monkeypatch.setenv("DISPATCH_FORMAT", "table")
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REF", "HANDLE", "STATUS", "SOURCE", "HOST", "CWD"]
    assert "LAST EVENT" not in lines[0]  # no lane has events yet
    assert lines[1].split()[:3] == [lanes[0].ref, "@alpha", "idle"]
    assert len(lines) == 3


def test_it_tables_queued_messages_and_keeps_json_for_single_objects(
    lanes: list[Lane], capsys: pytest.CaptureFixture[str]
) -> None:
    QueuedMessage.objects.create(lane=lanes[0], text="later\non two lines")
    assert main(["queue", "list", "@alpha", "--format", "table"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "LANE", "STATUS", "TEXT", "CREATED_AT"]
    assert "later on two lines" in table[1]
    assert main(["get", "@alpha", "--format", "table"]) == 0
    assert json.loads(capsys.readouterr().out)["handle"] == "@alpha"


def test_it_says_when_a_list_is_empty() -> None:
    assert table_text({"requests": []}) == "(no requests)\n"
    assert table_text({"handle": "@a"}) is None


def test_it_cuts_long_cells_and_shortens_timestamps() -> None:
    text = table_text(
        {
            "messages": [
                {
                    "id": 1,
                    "text": "x" * 100,
                    "created_at": "2026-01-02T03:04:05.6+00:00",
                }
            ]
        }
    )
    assert text is not None
    row = text.splitlines()[1]
    assert "x" * 47 + "…" in row and "2026-01-02 03:04:05" in row


def help_of(*words: str) -> str:
    parser, nodes = build_parser(words[0])
    return nodes[tuple(words)].parser.format_help()


def test_it_lists_only_the_flags_a_verb_takes() -> None:
    text = help_of("list")
    assert "--include-archived" in text
    assert "--limit" not in text.split("--unmanaged")[0]
    assert "with it: --archived, --limit" in " ".join(text.split())


def test_it_still_takes_the_switched_verbs_flags(db: None) -> None:
    parser, _nodes = build_parser("list")
    args = parser.parse_args(["list", "--unmanaged", "--limit", "3"])
    assert args.limit == 3


def test_it_says_what_each_group_holds() -> None:
    parser, _nodes = build_parser()
    text = " ".join(parser.format_help().split())
    assert "lane change a lane's thread: move, fork, rollback, compact" in text
    assert "goal a lane's native Codex goal: status, set, clear, history" in text
