"""`dispatch search`: ranked full-text search over the item index (+ Codex's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatchsite.core.errors import ValidationError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import execute
from lanes.history.search.dialects import fts5_match, tsquery_text
from lanes.history.search.query import query_parse
from lanes.history.search.snippets import snippet
from lanes.journal.indexing import index_messages
from lanes.models import Lane
from lanes.models.index import LaneItem
from lanes.services import lane_register
from lanes.worker import gateway
from tests.support.foreign import foreign_thread
from tests.support.mock_responses import MockResponsesServer
from tests.support.stack import Stack

CTX = Origin(surface="test")


def make_lane(name: str, cwd: Path | str) -> Lane:
    return lane_register(
        thread_id=f"thread-{name}",
        title=name,
        source="own",
        cwd=str(cwd),
        host="testhost",
    )


def say(thread_id: str, item_id: str, text: str, *, at: int = 1796000000) -> None:
    body = {
        "type": "agentMessage",
        "id": item_id,
        "text": text,
        "startedAtMs": at * 1000,
    }
    index_messages(
        [
            {
                "method": "item/completed",
                "params": {"threadId": thread_id, "turnId": "t", "item": body},
            }
        ]
    )


def search(query: str, **params: Any) -> dict[str, Any]:
    return execute("search", {"query": query, **params}, CTX)


def ids(query: str, **params: Any) -> list[str]:
    return [m["item_id"] for m in search(query, **params)["matches"]]


# -- query syntax (no DB) ----------------------------------------------------------


def test_it_quotes_every_user_term() -> None:
    parsed = query_parse('parser "unit test" fix* -flaky OR NEAR(')
    assert fts5_match(parsed) == (
        '"parser" AND "unit test" AND "fix"* AND "OR" AND "NEAR(" NOT "flaky"'
    )
    assert tsquery_text(parsed) == (
        "(parser) & (unit <-> test) & (fix:*) & (or) & (near) & !(flaky)"
    )
    with pytest.raises(ValidationError):
        query_parse('"" - * ()')
    with pytest.raises(ValidationError, match="too short"):
        query_parse("ab*")


def test_it_cuts_a_snippet_around_the_first_match() -> None:
    text = "a " * 300 + "the Zanzibar-42 output " + "b " * 300
    cut = snippet(text, ["zanzibar"])
    assert "[Zanzibar]-42" in cut
    assert cut.startswith("…") and cut.endswith("…") and len(cut) <= 202


# -- the local index ------------------------------------------------------------------


@pytest.fixture
def world(db: None, tmp_path: Path) -> dict[str, Lane]:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    alpha = make_lane("alpha", repo / "pkg")
    beta = make_lane("beta", tmp_path / "elsewhere")
    say(
        alpha.thread_id,
        "a1",
        "the parser fails on unicode input; parser parser",
        at=1796000000,
    )
    say(alpha.thread_id, "a2", "unit test for the tokenizer passes", at=1796086400)
    say(
        beta.thread_id,
        "b1",
        "the parser is fine here, a long message about other things "
        "that dilutes the single mention in a much longer text body",
        at=1796172800,
    )
    say(
        "thread-unmanaged",
        "u1",
        "parser seen in a thread no lane manages",
        at=1796172800,
    )
    return {"alpha": alpha, "beta": beta, "repo": repo}  # type: ignore[dict-item]


def test_it_ranks_matches_by_relevance_with_lane_and_snippet(
    world: dict[str, Any],
) -> None:
    out = search("parser")
    assert out["experimental"] is False and out["next_cursor"] is None
    matches = out["matches"]
    assert [m["item_id"] for m in matches][0] == "a1"
    assert set(m["item_id"] for m in matches) == {"a1", "b1", "u1"}
    first = matches[0]
    assert (first["ref"], first["handle"], first["managed"], first["origin"]) == (
        world["alpha"].ref,
        "@alpha",
        True,
        "index",
    )
    assert "[parser]" in first["snippet"]
    assert first["score"] > matches[1]["score"]
    unmanaged = next(m for m in matches if m["item_id"] == "u1")
    assert unmanaged["managed"] is False and unmanaged["ref"] is None


def test_it_matches_phrases_prefixes_and_exclusions(world: dict[str, Any]) -> None:
    assert ids('"unit test"') == ["a2"]
    assert ids('"test unit"') == []
    assert ids("tokeni*") == ["a2"]
    assert sorted(ids("parser -unicode")) == ["b1", "u1"]
    assert ids("PARSER unicode") == ["a1"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"lane": "alpha"}, ["a1"]),
        ({"lane": "thread-beta"}, ["b1"]),
        ({"lane": "thread-unmanaged"}, ["u1"]),
        ({"scope": "managed"}, ["a1", "b1"]),
        ({"scope": "unmanaged"}, ["u1"]),
        ({"since": "2026-12-02"}, ["b1", "u1"]),
        ({"until": "2026-11-30"}, ["a1"]),
        ({"since": "2026-11-30T00:53:21Z"}, ["b1", "u1"]),
        ({"since": "2026-11-30T00:00:00Z", "until": "2026-11-30"}, ["a1"]),
    ],
)
def test_it_filters_matches(
    world: dict[str, Any],
    params: dict[str, Any],
    expected: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --unmanaged asks Codex too; here Codex has nothing more.
    monkeypatch.setattr(
        gateway, "rpc", lambda *a, **k: {"data": [], "nextCursor": None}
    )
    assert sorted(ids("parser", **params)) == expected


def test_it_filters_by_directory_and_repository(world: dict[str, Any]) -> None:
    repo: Path = world["repo"]
    assert ids("parser", directory=str(repo)) == ["a1"]
    assert ids("parser", repo=str(repo / "pkg" / "deep")) == ["a1"]
    assert ids("parser", directory=str(repo.parent / "elsewhere")) == ["b1"]
    with pytest.raises(ValidationError):
        search("parser", repo="/")


def test_it_pages_with_a_cursor(world: dict[str, Any]) -> None:
    first = search("parser", limit=2)
    assert len(first["matches"]) == 2 and first["next_cursor"]
    rest = search("parser", limit=2, cursor=first["next_cursor"])
    assert rest["next_cursor"] is None
    seen = [m["item_id"] for m in first["matches"] + rest["matches"]]
    assert sorted(seen) == ["a1", "b1", "u1"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 50, "max_scan": 10},
        {"since": "yesterday"},
        {"since": "2026-12-01", "until": "2026-11-01"},
        {"cursor": "bogus"},
        {"lane": "alpha", "scope": "unmanaged"},
        {"scope": "everything"},
    ],
)
def test_it_rejects_bad_search_requests(
    world: dict[str, Any], params: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        search("parser", **params)


def test_it_merges_codex_matches_for_unmanaged_threads(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def thread(thread_id: str, cwd: str) -> dict[str, Any]:
        return {
            "id": thread_id,
            "cwd": cwd,
            "name": None,
            "preview": "a preview",
            "status": {"type": "notLoaded"},
            "createdAt": 1796000000,
            "updatedAt": 1796000000,
        }

    def rpc(host: str, method: str, params: dict[str, Any], **kwargs: Any) -> Any:
        calls.append((method, params))
        return {
            "data": [
                {
                    "thread": thread("thread-alpha", "/x"),
                    "snippet": "managed, so dropped",
                },
                {
                    "thread": thread("codex-only", "/x"),
                    "snippet": "...the parser in Codex",
                },
            ],
            "nextCursor": None,
        }

    monkeypatch.setattr(gateway, "rpc", rpc)
    out = search("parser", scope="unmanaged")
    assert out["experimental"] is True
    assert [(m["id"], m["origin"]) for m in out["matches"]] == [
        ("thread-unmanaged", "index"),
        ("codex-only", "app-server"),
    ]
    remote = out["matches"][1]
    assert remote["managed"] is False and "[parser]" in remote["snippet"]
    assert (
        remote["updated_at"] == datetime.fromtimestamp(1796000000, tz=UTC).isoformat()
    )
    assert calls[0][0] == "thread/search" and calls[0][1]["searchTerm"] == "parser"


def test_it_finds_a_word_in_a_tool_output_of_a_million_character_turn(db: None) -> None:
    lane = make_lane("big", "/tmp")
    output = "noise " * 20_000 + "needle-in-the-output " + "more " * 20_000
    index_messages(
        [
            {
                "method": "item/completed",
                "params": {
                    "threadId": lane.thread_id,
                    "turnId": "t",
                    "item": {
                        "type": "commandExecution",
                        "id": "c",
                        "command": "build",
                        "aggregatedOutput": output,
                        "status": "completed",
                    },
                },
            }
        ]
    )
    # The index keeps the head and tail of very long items; the middle
    # is in the journal and in Codex.
    assert len(LaneItem.objects.get().text) <= 16_384
    assert ids("build") == ["c"]


# -- process level: the CLI against the fake and the real codex ------------------------

# printf builds the word, so it appears in the command's output only.
WORD_COMMAND = "printf 'zanz%sbar-42' i"


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack()


def run_turn(stack: Stack, lane: dict[str, Any], text: str) -> None:
    ack = stack.cli_ok("send", lane["ref"], text)
    stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_id"] == ack["turn_id"]
            and r["latest_turn_status"] == "completed"
        ),
        what=f"turn {text!r}",
    )


def test_it_finds_a_word_from_a_tool_output_three_turns_ago(
    stack: Stack, mock: MockResponsesServer, tmp_path: Path
) -> None:
    if stack.codex == "real":
        mock.queue(
            {"kind": "shell", "command": WORD_COMMAND},
            {"kind": "message", "text": "The command ran."},
        )
        first = "run the tool please"
    else:
        first = f"[[shell:{WORD_COMMAND}]] run the tool please"
    lane = stack.cli_ok(
        "new", "--name", "tooly", "--cwd", str(tmp_path), "--text", first
    )
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    run_turn(stack, lane, "second turn")
    run_turn(stack, lane, "third turn")

    out = stack.cli_ok("search", "zanzibar")
    assert len(out["matches"]) == 1, out
    match = out["matches"][0]
    assert (match["ref"], match["handle"], match["managed"]) == (
        lane["ref"],
        "@tooly",
        True,
    )
    assert (match["type"], match["tool"], match["role"]) == (
        "commandExecution",
        "shell",
        "tool",
    )
    assert "[zanzibar]-42" in match["snippet"]
    assert stack.cli_ok("search", "zanzibar", "--thread", lane["ref"])["matches"]
    assert stack.cli_ok("search", "zanzibar", "--unmanaged")["matches"] == []

    overview = stack.cli_ok("history")["threads"]
    row = next(r for r in overview if r["ref"] == lane["ref"])
    assert (
        row["turns"] == 3 and row["tool_calls"] == 1 and "shell" in row["unique_tools"]
    )
    tools = stack.cli_ok("history", lane["ref"], "--view", "tools")["tools"]
    assert tools[0]["tool"] == "shell"
    shells = stack.cli_ok(
        "history", lane["ref"], "--view", "items", "--type", "commandExecution", "--raw"
    )["items"]
    assert "zanzibar-42" in shells[0]["raw"]["aggregatedOutput"]


def test_it_asks_codex_for_threads_it_does_not_manage(
    stack: Stack, tmp_path: Path
) -> None:
    thread_id = foreign_thread(stack, cwd=tmp_path, texts=["a note about serengeti"])
    assert stack.cli_ok("search", "serengeti")["matches"] == []
    out = stack.cli_ok("search", "serengeti", "--unmanaged")
    assert out["experimental"] is True
    match = next(m for m in out["matches"] if m["id"] == thread_id)
    assert (match["origin"], match["managed"], match["source"]) == (
        "app-server",
        False,
        "unmanaged",
    )
    assert "serengeti" in match["snippet"].lower()
    inside = stack.cli_ok("search", "serengeti", "--unmanaged", "--thread", thread_id)
    assert inside["matches"] and inside["matches"][0]["item_id"]


def test_it_ranks_a_very_common_term_among_its_newest_matches(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lanes.history.search import dialects

    monkeypatch.setattr(dialects, "RANK_WINDOW", 3)
    lane = make_lane("common", "/tmp")
    # The oldest item mentions the word most often: outside the window.
    say(lane.thread_id, "old", "kiwi kiwi kiwi kiwi")
    for n in range(4):
        say(lane.thread_id, f"new{n}", f"kiwi and {n} other fruit")
    out = search("kiwi")
    assert out["scanned"] == 3
    assert sorted(m["item_id"] for m in out["matches"]) == ["new1", "new2", "new3"]
    assert ids("kiwi", lane="common") == ids("kiwi")
