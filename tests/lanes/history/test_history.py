"""`dispatch history`: overview and per-lane views from the local index only."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from dispatchsite.core.errors import NotFoundError, ValidationError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import execute
from lanes.journal.indexing import index_messages
from lanes.models import Lane
from lanes.models.index import LaneSyncState
from lanes.services import lane_register
from lanes.worker import gateway

pytestmark = pytest.mark.django_db

CTX = Origin(surface="test")


@pytest.fixture(autouse=True)
def no_app_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("history must not call the app-server")

    monkeypatch.setattr(gateway, "rpc", refuse)


def git_repo(path: Path, *, dirty: bool) -> Path:
    path.mkdir(parents=True)
    run = ["git", "-C", str(path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*run, "init", "-q", "-b", "main"], check=True)
    (path / "a.txt").write_text("one\n")
    subprocess.run([*run, "add", "a.txt"], check=True)
    subprocess.run([*run, "commit", "-q", "-m", "init"], check=True)
    if dirty:
        (path / "a.txt").write_text("two\n")
    return path


def make_lane(name: str, cwd: Path | str, source: str = "own") -> Lane:
    return lane_register(
        thread_id=f"thread-{name}",
        title=name,
        source=source,
        cwd=str(cwd),
        host="testhost",
    )


def item(kind: str, item_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "id": item_id, **fields}


def play(
    lane: Lane, turn: str, items: list[dict[str, Any]], *, t0: int = 1796000000
) -> None:
    """A whole turn through the live indexer, as the journal would feed it."""
    thread = lane.thread_id
    messages: list[dict[str, Any]] = [
        {
            "method": "turn/started",
            "params": {"threadId": thread, "turn": {"id": turn, "startedAt": t0}},
        }
    ]
    for n, body in enumerate(items):
        body = {"startedAtMs": (t0 + n) * 1000, **body}
        messages.append(
            {
                "method": "item/completed",
                "params": {"threadId": thread, "turnId": turn, "item": body},
            }
        )
    messages.append(
        {
            "method": "turn/completed",
            "params": {
                "threadId": thread,
                "turn": {
                    "id": turn,
                    "status": "completed",
                    "completedAt": t0 + len(items),
                },
            },
        }
    )
    index_messages(messages)


def history(**params: Any) -> dict[str, Any]:
    return execute("history", params, CTX)


@pytest.fixture
def lanes(tmp_path: Path) -> dict[str, Lane]:
    alpha = make_lane("alpha", git_repo(tmp_path / "alpha", dirty=True))
    beta = make_lane(
        "beta", git_repo(tmp_path / "beta", dirty=False), source="attached"
    )
    play(
        alpha,
        "a1",
        [
            item(
                "userMessage",
                "a1-u",
                content=[{"type": "text", "text": "fix the parser"}],
            ),
            item(
                "commandExecution",
                "a1-c",
                command="pytest -q",
                aggregatedOutput="1 failed",
                status="completed",
            ),
            item(
                "fileChange",
                "a1-f",
                status="completed",
                changes=[
                    {"path": "src/parser.py", "diff": "+fixed"},
                    {"path": "tests/test_p.py", "diff": "+t"},
                ],
            ),
            item("agentMessage", "a1-a", text="Fixed the parser."),
        ],
    )
    play(
        alpha,
        "a2",
        [
            item("userMessage", "a2-u", content=[{"type": "text", "text": "again"}]),
            item(
                "fileChange",
                "a2-f",
                status="completed",
                changes=[{"path": "src/parser.py", "diff": "+more"}],
            ),
            item(
                "mcpToolCall",
                "a2-m",
                server="docs",
                tool="lookup",
                arguments={"q": "x"},
                status="completed",
            ),
            item("agentMessage", "a2-a", text="Done again."),
        ],
        t0=1796000100,
    )
    play(
        beta,
        "b1",
        [
            item("userMessage", "b1-u", content=[{"type": "text", "text": "hello"}]),
            item("agentMessage", "b1-a", text="Hi."),
        ],
        t0=1796000200,
    )
    return {"alpha": alpha, "beta": beta}


def test_it_summarises_every_lane_from_the_index(lanes: dict[str, Lane]) -> None:
    out = history()
    assert out["mode"] == "overview" and out["thread"] is None
    rows = {row["handle"]: row for row in out["threads"]}
    alpha = rows["@alpha"]
    assert (alpha["turns"], alpha["items"], alpha["messages"], alpha["tool_calls"]) == (
        2,
        8,
        4,
        4,
    )
    assert alpha["unique_tools"] == ["apply_patch", "docs/lookup", "shell"]
    assert alpha["files_changed_count"] == 2
    assert alpha["files_changed"][0] == {"path": "src/parser.py", "count": 2}
    assert alpha["transcript_bytes"] > 0
    assert alpha["estimated_tokens"] == alpha["transcript_bytes"] // 4
    assert alpha["first_event_at"] < alpha["last_event_at"]
    assert alpha["worktree"]["detected"] is True and alpha["worktree"]["dirty"] is True
    assert alpha["worktree"]["branch"] == "main"
    assert alpha["worktree"]["changed_files"] == ["a.txt"]
    assert alpha["index"] == {
        "state": "live",
        "history_complete": False,
        "last_synced_at": None,
    }
    assert rows["@beta"]["worktree"]["dirty"] is False


@pytest.mark.parametrize(
    ("params", "handles"),
    [
        ({"has_tool": "LOOKUP"}, ["@alpha"]),
        ({"source": "attached"}, ["@beta"]),
        ({"cwd": "beta"}, ["@beta"]),
        ({"worktree": "changed"}, ["@alpha"]),
        ({"worktree": "clean"}, ["@beta"]),
        ({"min_bytes": 1}, ["@alpha", "@beta"]),
        ({"min_bytes": 10**9}, []),
        ({"status": "busy"}, []),
    ],
)
def test_it_filters_the_overview(
    lanes: dict[str, Lane], params: dict[str, Any], handles: list[str]
) -> None:
    assert sorted(row["handle"] for row in history(**params)["threads"]) == handles


def test_it_shows_one_lane_summary_by_default(lanes: dict[str, Lane]) -> None:
    out = history(lane="alpha")
    assert out["mode"] == "summary" and out["threads"] == []
    assert out["thread"]["ref"] == lanes["alpha"].ref and out["thread"]["turns"] == 2


def test_it_lists_a_lanes_items_with_filters(lanes: dict[str, Lane]) -> None:
    items = history(lane="alpha", view="items")["items"]
    assert [i["item_id"] for i in items] == [
        "a1-u",
        "a1-c",
        "a1-f",
        "a1-a",
        "a2-u",
        "a2-f",
        "a2-m",
        "a2-a",
    ]
    assert "raw" not in items[0] or items[0]["raw"] is None

    def ids(**params: Any) -> list[str]:
        return [
            i["item_id"] for i in history(lane="alpha", view="items", **params)["items"]
        ]

    assert ids(item_type="fileChange") == ["a1-f", "a2-f"]
    assert ids(tool="shell") == ["a1-c"]
    assert ids(role="user") == ["a1-u", "a2-u"]
    assert ids(grep="PARSER") == ["a1-u", "a1-f", "a1-a", "a2-f"]
    assert ids(limit=2) == ["a2-m", "a2-a"]
    raw = history(lane="alpha", view="items", grep="pytest", raw=True)["items"]
    assert raw[0]["raw"]["command"] == "pytest -q"


def test_it_counts_tools_and_files_of_one_lane(lanes: dict[str, Lane]) -> None:
    tools = history(lane="alpha", view="tools")["tools"]
    assert tools[0] == {"tool": "apply_patch", "count": 2, "item_types": ["fileChange"]}
    assert {t["tool"] for t in tools} == {"apply_patch", "shell", "docs/lookup"}
    files = history(lane="alpha", view="files")["files"]
    assert files[0] == {
        "path": "src/parser.py",
        "count": 2,
        "changed": 2,
        "referenced": 0,
    }


def test_it_says_how_complete_a_lanes_index_is(lanes: dict[str, Lane]) -> None:
    LaneSyncState.objects.create(
        thread_id=lanes["beta"].thread_id, state="complete", history_complete=True
    )
    index = history(lane="beta")["thread"]["index"]
    assert index["state"] == "complete" and index["history_complete"] is True
    empty = make_lane("gamma", "/nonexistent")
    assert history(lane=empty.ref)["thread"]["index"]["state"] == "empty"
    assert history(lane=empty.ref)["thread"]["worktree"]["detected"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"view": "overview", "lane": "alpha"},
        {"view": "items"},
        {"lane": "alpha", "grep": "x"},
        {"lane": "alpha", "has_tool": "shell"},
        {"lane": "alpha", "view": "items", "worktree": "changed"},
        {"view": "nonsense"},
        {"lane": "alpha", "view": "items", "limit": 0},
    ],
)
def test_it_rejects_contradictory_history_requests(
    lanes: dict[str, Lane], params: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        history(**params)


def test_it_answers_not_found_for_an_unknown_lane(lanes: dict[str, Lane]) -> None:
    with pytest.raises(NotFoundError):
        history(lane="@nobody")
