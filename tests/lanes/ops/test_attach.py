"""attach, list --unmanaged, tail and the authority of attached lanes, end to end.

The foreign threads come from a second app-server process on the same
CODEX_HOME, the way another Codex client would have started them.
"""

from __future__ import annotations

import pytest

from tests.lanes.conftest import Stack, cli, foreign_thread


@pytest.fixture(scope="module")
def outsider(stack: Stack) -> str:
    return foreign_thread(
        stack, texts=["  hello   from\n another   client "], name="outsider"
    )


def audit_ops(stack: Stack, ref: str) -> list[tuple[str, str]]:
    status, out, err = cli("daemon", "log", "--limit", "200", env=stack.env)
    assert status == 0, err
    return [(a["op"], a["outcome"]) for a in out["actions"] if a["lane"] == ref]


def test_it_lists_unmanaged_threads_then_attaches_one_idempotently(
    stack: Stack, outsider: str
) -> None:
    status, out, err = cli("list", "--unmanaged", "--limit", "5", env=stack.env)
    assert status == 0, err
    row = next(r for r in out["sessions"] if r["id"] == outsider)
    assert row["name"] == "outsider"
    assert row["preview"] == "hello from another client"
    assert row["archived"] is False and row["ephemeral"] is False

    status, first, err = cli("attach", outsider, env=stack.env)
    assert status == 0, err
    assert first["registered"] is True
    assert first["source"] == "attached" and first["handle"] == "@outsider"
    assert first["writable"] is False
    assert first["capabilities"]["send"] is False
    assert first["capabilities"]["tail"] is True
    assert "allow_attached_writes" in first["write_locked_reason"]

    status, again, err = cli("attach", outsider, env=stack.env)
    assert status == 0, err
    assert again["registered"] is False and again["ref"] == first["ref"]
    # Metadata only: attaching never resumes the thread.
    assert not [
        r
        for r in stack.received("thread/resume")
        if r["params"]["threadId"] == outsider
    ]

    status, out, err = cli("list", "--unmanaged", env=stack.env)
    assert status == 0, err
    assert outsider not in [r["id"] for r in out["sessions"]]
    assert audit_ops(stack, first["ref"]) == [("attach", "ok")]


def test_it_suffixes_a_clashing_handle_and_syncs_the_latest_turn(
    stack: Stack, outsider: str
) -> None:
    twin = foreign_thread(stack, texts=["twin"], name="outsider")
    status, out, err = cli("attach", twin, "--sync", env=stack.env)
    assert status == 0, err
    assert out["handle"] == "@outsider-2"
    assert out["latest_turn"]["status"] == "completed"
    assert out["sync"]["latest_turn_id"] == out["latest_turn"]["id"]
    assert out["sync"]["state"] == "complete" and out["sync"]["items_indexed"] >= 2


def test_it_refuses_to_attach_an_unknown_thread(stack: Stack) -> None:
    unknown = "019a0000-0000-7000-8000-000000000000"
    status, out, err = cli("attach", unknown, env=stack.env)
    assert status == 4, (out, err)
    assert err["error"]["code"] == "not_found"
    # Not even shaped like a thread id: the user's mistake, not codex's.
    status, out, err = cli("attach", "no-such-thread", env=stack.env)
    assert status == 2, (out, err)
    assert "UUID" in err["error"]["message"]
    status, out, err = cli("get", "no-such-thread", env=stack.env)
    assert status == 4


def test_it_keeps_attached_lanes_read_only_for_turn_writes(
    stack: Stack, outsider: str
) -> None:
    status, out, err = cli("send", "@outsider", "hi there", env=stack.env)
    assert status == 7, (out, err)
    assert err["error"]["code"] == "authority"
    assert "allow_attached_writes" in err["error"]["hint"]
    status, out, err = cli("goal", "set", "@outsider", "take over", env=stack.env)
    assert status == 7, (out, err)
    assert not [
        r for r in stack.received("turn/start") if r["params"]["threadId"] == outsider
    ]


def test_it_tails_an_attached_lane_from_the_app_server(
    stack: Stack, outsider: str
) -> None:
    status, out, err = cli("tail", "@outsider", "--limit", "5", env=stack.env)
    assert status == 0, err
    assert out["transcript_source"] == "app-server" and out["managed"] is True
    assert out["source"] == "attached"
    texts = [(i["type"], i["text"]) for i in out["items"]]
    assert texts[0] == ("userMessage", "  hello   from\n another   client ")
    assert texts[-1][0] == "agentMessage" and "fake reply" in texts[-1][1]
    assert stack.received("thread/items/list")


def test_it_writes_to_attached_lanes_after_a_resume_when_policy_allows(
    stack: Stack, outsider: str
) -> None:
    stack.write_config("[policy]\nallow_attached_writes = true\n")
    try:
        status, out, err = cli("send", "@outsider", "now you may", env=stack.env)
    finally:
        (stack.home / "config.toml").unlink()
    assert status == 0, err
    assert out["op"] == "send" and out["writable"] is True
    methods = [
        (r["method"], r["params"])
        for r in stack.received()
        if (r.get("params") or {}).get("threadId") == outsider
    ]
    resume = methods.index(
        ("thread/resume", {"threadId": outsider, "excludeTurns": True})
    )
    start = next(i for i, (m, _) in enumerate(methods) if m == "turn/start")
    assert resume < start
    assert audit_ops(stack, out["ref"])[0] == ("send", "ok")
