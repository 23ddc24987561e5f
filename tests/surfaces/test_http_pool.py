"""The REST API on its thread pools (dispatchsite/surfaces/http_pool.py),
through daphne as `dispatch up` serves it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dispatchsite.surfaces.http_pool import WORK_THREADS
from tests.support.stack import Stack, wait_for


@pytest.fixture
def stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack(web=True)


def client(stack: Stack) -> httpx.Client:
    assert stack.web_url
    token = stack.cli_ok("token", "create", "pool")["token"]
    return httpx.Client(
        base_url=stack.web_url + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def turn_completed(row: dict[str, Any]) -> bool:
    return bool(row["latest_turn_status"] == "completed")


@pytest.mark.e2e
def test_it_answers_requests_while_more_polls_than_workers_wait(stack: Stack) -> None:
    lane = stack.cli_ok("new", "--name", "quiet", "--text", "hello")
    stack.wait_lane(lane["id"], turn_completed)
    http = client(stack)
    last = http.get(f"/lanes/{lane['ref']}/watch", params={"timeout": 0}).json()
    polls: list[dict[str, Any]] = []

    def poll() -> None:
        # Nothing new arrives on the idle lane, so each poll waits its 20 s.
        params = {"after": last["last_seq"], "timeout": 20}
        polls.append(http.get(f"/lanes/{lane['ref']}/watch", params=params).json())

    waiting = [threading.Thread(target=poll) for _ in range(WORK_THREADS * 2)]
    for thread in waiting:
        thread.start()
    try:
        for _ in range(3):
            shown = http.get(f"/lanes/{lane['ref']}")
            assert shown.json()["lane"] == lane["id"]
        assert polls == [], "answered only after the polls gave up"
        sent = http.post(f"/lanes/{lane['ref']}/send", json={"text": "while polled"})
        assert sent.status_code == 200, sent.text
        # The send's events end the polls: they were waiting, not refused.
    finally:
        for thread in waiting:
            thread.join(timeout=60)
    assert len(polls) == WORK_THREADS * 2
    assert all(page["events"] for page in polls), polls


@pytest.mark.e2e
def test_it_passes_bodies_headers_and_query_strings_through(stack: Stack) -> None:
    http = client(stack)
    lane = stack.cli_ok("new", "--name", "bodies", "--text", "hello")
    stack.wait_lane(lane["id"], turn_completed)
    # A body past the in-memory spool still arrives whole (and is refused
    # by the op's own bound, not cut off).
    big = http.post(f"/lanes/{lane['ref']}/send", json={"text": "x" * 600_000})
    assert big.status_code == 400, big.text
    assert big.json()["error"]["code"] == "validation"
    assert "text" in big.json()["error"]["message"]
    unicode_name = http.get("/lanes/%C3%A9t%C3%A9")
    assert unicode_name.status_code == 404
    assert "été" in unicode_name.json()["error"]["message"]
    listed = http.get("/lanes", params={"page_size": 1})
    assert listed.status_code == 200
    assert len(listed.json()["lanes"]) == 1
    refused = httpx.get(stack.web_url + "/api/v1/lanes")  # type: ignore[operator]
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


@pytest.mark.e2e
def test_it_reads_a_chunked_body_whole(stack: Stack) -> None:
    http = client(stack)
    lane = stack.cli_ok("new", "--name", "chunked", "--text", "hello")
    stack.wait_lane(lane["id"], turn_completed)

    def chunks() -> Any:
        yield b'{"text": "split '
        yield b'across chunks", "mode": "queue"}'

    sent = http.post(
        f"/lanes/{lane['ref']}/send",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert sent.status_code == 200, sent.text
    # An idle lane delivers the queued message at once: the model answers it.
    wait_for(
        lambda: (
            "to: split across chunks"
            in json.dumps(http.get(f"/lanes/{lane['ref']}/transcript").json())
        ),
        timeout=30,
        what="the reply to the chunked message",
    )
