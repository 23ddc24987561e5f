"""Selectors, rename/archive/restore (managed and raw ids), tail of owned lanes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lanes.conftest import Stack, cli, foreign_thread, wait_for


def new_lane(stack: Stack, name: str, *args: str) -> dict[str, Any]:
    status, out, err = cli("new", "--name", name, *args, env=stack.env)
    assert status == 0, err
    return out


def lane_row(stack: Stack, ref: str, *args: str) -> dict[str, Any] | None:
    status, out, err = cli("list", *args, env=stack.env)
    assert status == 0, err
    return next((lane for lane in out["lanes"] if lane["ref"] == ref), None)


@pytest.fixture(scope="module")
def web_lanes(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    return new_lane(stack, "web-api", "--no-send"), new_lane(
        stack, "web-ui", "--no-send"
    )


def test_it_lists_candidates_for_an_ambiguous_read_selector(
    stack: Stack, web_lanes: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    status, out, err = cli("get", "web", env=stack.env)
    assert status == 2, (out, err)
    assert err["error"]["code"] == "validation"
    refs = {c["ref"] for c in err["error"]["data"]["candidates"]}
    assert refs == {lane["ref"] for lane in web_lanes}

    status, out, err = cli("get", "web-u", env=stack.env)  # unique substring: a read
    assert status == 0, err
    assert out["ref"] == web_lanes[1]["ref"]


def test_it_never_fuzzy_matches_a_write(
    stack: Stack, web_lanes: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    status, out, err = cli("send", "web-u", "hello", env=stack.env)
    assert status == 4, (out, err)
    assert err["error"]["code"] == "not_found"
    status, out, err = cli("send", "@nobody", "hello", env=stack.env)
    assert status == 4


def test_it_renames_a_managed_lane_and_keeps_handles_unique(
    stack: Stack, web_lanes: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    api, ui = web_lanes
    status, out, err = cli("rename", api["ref"], "@web-ui", env=stack.env)
    assert status == 2, (out, err)
    status, out, err = cli("rename", api["ref"], "@backend", env=stack.env)
    assert status == 0, err
    assert out == {
        "ref": api["ref"],
        "id": api["id"],
        "handle": "@backend",
        "managed": True,
        "source": "own",
        "status": "idle",
        "cwd": api["cwd"],
    }
    names = [
        r["params"]
        for r in stack.received("thread/name/set")
        if r["params"]["threadId"] == api["id"]
    ]
    assert names[-1]["name"] == "backend"


def test_it_archives_only_with_confirmation_and_restores_without_a_turn(
    stack: Stack, web_lanes: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    ui = web_lanes[1]
    status, out, err = cli("archive", ui["ref"], "--no-interactive", env=stack.env)
    assert status == 2, (out, err)
    assert "--yes" in err["error"]["hint"]
    assert lane_row(stack, ui["ref"])["status"] == "idle"  # type: ignore[index]

    status, out, err = cli("archive", ui["ref"], "--yes", env=stack.env)
    assert status == 0, err
    assert out["status"] == "archived" and out["managed"] is True
    assert lane_row(stack, ui["ref"]) is None
    assert lane_row(stack, ui["ref"], "--include-archived")["status"] == "archived"  # type: ignore[index]

    starts_before = len(stack.received("turn/start"))
    status, out, err = cli("restore", ui["ref"], env=stack.env)
    assert status == 0, err
    assert out["status"] == "idle" and out["source"] == "own"
    assert len(stack.received("turn/start")) == starts_before
    assert not [
        r
        for r in stack.received("thread/resume")
        if r["params"]["threadId"] == ui["id"]
    ]


def test_it_loads_a_restored_lane_on_the_next_send_and_adds_an_intro(
    stack: Stack, web_lanes: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    api, ui = web_lanes
    status, out, err = cli("send", ui["ref"], "hello", "--intro", env=stack.env)
    assert status == 2, (out, err)
    assert "CODEX_THREAD_ID" in err["error"]["message"]

    env = {**stack.env, "CODEX_THREAD_ID": api["id"]}
    status, out, err = cli("send", ui["ref"], "hello", "--intro", env=env)
    assert status == 0, err
    assert out["op"] == "send" and out["turn_id"]
    calls = [
        r
        for r in stack.received()
        if (r.get("params") or {}).get("threadId") == ui["id"]
    ]
    # Archiving unloaded the thread; the send loads it (metadata only) first.
    assert [c["method"] for c in calls[-3:]] == [
        "turn/start",
        "thread/resume",
        "turn/start",
    ]
    text = calls[-1]["params"]["input"][0]["text"]
    assert text.startswith("hello\n\ndispatch (dm): [@backend]")
    assert f"dispatch send {api['ref']}" in text


def test_it_acts_on_raw_thread_ids_without_registering_them(stack: Stack) -> None:
    raw = foreign_thread(stack, texts=["raw thread"])
    status, out, err = cli("rename", raw, "raw-name", env=stack.env)
    assert status == 0, err
    assert out["managed"] is False and out["source"] == "unmanaged"
    assert out["ref"] is None and out["id"] == raw

    status, out, err = cli("archive", raw, "--yes", env=stack.env)
    assert status == 0, err
    assert out["status"] == "archived" and out["managed"] is False
    status, out, err = cli("list", "--unmanaged", "--archived", env=stack.env)
    assert status == 0, err
    row = next(r for r in out["sessions"] if r["id"] == raw)
    assert row["name"] == "raw-name" and row["archived"] is True

    status, out, err = cli("restore", raw, env=stack.env)
    assert status == 0, err
    assert out["managed"] is False
    status, out, err = cli("list", "--include-archived", env=stack.env)
    assert raw not in [lane["id"] for lane in out["lanes"]]

    status, out, err = cli("archive", "@not-a-lane", "--yes", env=stack.env)
    assert status == 4, (out, err)


def test_it_tails_an_owned_lane_from_the_journal(stack: Stack) -> None:
    lane = new_lane(stack, "chatty", "--text", "first words")

    wait_for(lambda: stack.lane_state(lane["ref"])["latest_turn_status"] == "completed")
    status, out, err = cli("tail", lane["ref"], "--limit", "1", env=stack.env)
    assert status == 0, err
    assert out["transcript_source"] == "journal"
    assert [i["type"] for i in out["items"]] == ["agentMessage"]
    assert out["items"][0]["text"].endswith("to: first words")
