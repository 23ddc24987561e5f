"""Dispatch's own events in a lane's stream, next to the app-server's.

Queued and delivered messages, renames, archive and restore each leave a
`dispatch/...` event at the lane's next seq; the journal stays contiguous
and the readers (watch, tail) keep working.
"""

from __future__ import annotations

import json
from typing import Any

from tests.lanes.conftest import Stack, cli, wait_for


def ok(stack: Stack, *args: str) -> Any:
    status, out, err = cli(*args, env=stack.env)
    assert status == 0, (args, err)
    return out


def dispatch_params(stack: Stack, thread_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = stack.query(
        "select method, params from lanes_laneevent where thread_id = ?"
        " and method like 'dispatch/%' order by seq",
        thread_id,
    )
    return [(method, json.loads(params)) for method, params in rows]


def test_it_journals_queue_rename_archive_and_restore(stack: Stack) -> None:
    lane = ok(stack, "new", "--name", "stream", "--text", "[[slow:0.1]] first")
    ref = lane["ref"]
    queued = ok(stack, "send", ref, "after that", "--queue")
    wait_for(
        lambda: any(
            m == "dispatch/message/delivered"
            for m, _ in dispatch_params(stack, lane["id"])
        ),
        timeout=30,
        what="the queued message's delivery",
    )
    wait_for(lambda: stack.lane_state(ref)["latest_turn_status"] == "completed")
    ok(stack, "rename", ref, "@stream-2")
    ok(stack, "archive", ref, "--yes")
    ok(stack, "restore", ref)

    events = dispatch_params(stack, lane["id"])
    assert [m for m, _ in events] == [
        "dispatch/message/queued",
        "dispatch/message/delivered",
        "dispatch/lane/renamed",
        "dispatch/lane/archived",
        "dispatch/lane/restored",
    ]
    message_id = queued["queued_message_id"]
    assert events[0][1]["messageId"] == message_id
    assert events[0][1]["text"] == "after that"
    assert events[0][1]["by"].startswith("cli")
    assert events[1][1]["messageId"] == message_id and events[1][1]["turnId"]
    assert events[2][1]["title"] == "stream-2"

    seqs = [seq for seq, _ in stack.events(lane["id"])]
    assert seqs == list(range(1, len(seqs) + 1))
    watched = ok(stack, "watch", ref, "--after", "0", "--limit", "500")
    methods = [e["method"] for e in watched["events"]]
    assert "dispatch/lane/restored" in methods and "turn/completed" in methods
    tail = ok(stack, "tail", ref)
    assert [i["text"] for i in tail["items"] if i["type"] == "userMessage"] == [
        "[[slow:0.1]] first",
        "after that",
    ]
