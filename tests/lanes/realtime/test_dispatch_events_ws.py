"""/ws/events carries dispatch's own events in seq order among the worker's."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from dispatchsite.asgi import application
from lanes.journal.dispatch_events import LANE_RENAMED, dispatch_event_record
from lanes.journal.writer import SeqCounter, journal_write_batch
from lanes.models import Lane
from lanes.realtime import hub
from lanes.services import lane_register
from lanes.tokens import api_token_create
from lanes.worker import daemon as worker
from tests.support.stack import FRAME_KEYS
from tests.support.ws import events_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

THREAD = "thread-ws-dispatch"


@pytest.fixture(autouse=True)
def serialized_db(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in test_consumers: the in-memory test DB wants one thread.
    monkeypatch.setattr(hub, "THREAD_SENSITIVE", True)


@pytest.fixture
def lane() -> Lane:
    return lane_register(
        thread_id=THREAD, title="wsd", source="own", cwd="/srv", host="testhost"
    )


def delta(text: str) -> dict[str, Any]:
    params = {"threadId": THREAD, "turnId": "t1", "itemId": "m1", "delta": text}
    return {"method": "item/agentMessage/delta", "params": params}


async def frames(
    socket: WebsocketCommunicator, count: int, timeout: float = 5
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        text = await socket.receive_from(timeout=timeout)
        got.extend(events_of(text))
    return got


async def test_it_streams_dispatch_events_among_app_server_events(
    lane: Lane,
) -> None:
    _token, raw = await sync_to_async(api_token_create)(name="ws-dispatch")
    publisher = worker.Worker(host="testhost")
    counter = SeqCounter()
    first = await sync_to_async(journal_write_batch)([delta("a")], counter)
    socket = WebsocketCommunicator(
        application,
        f"/ws/events?lane={lane.ref}&after=0",
        headers=[(b"authorization", f"Bearer {raw}".encode())],
    )
    connected, _ = await socket.connect()
    assert connected
    try:
        assert [f["seq"] for f in await frames(socket, 1)] == [1]
        await publisher.publish(first.frames)
        # A service in another process: journaled and published on its own.
        await sync_to_async(dispatch_event_record)(
            lane=lane, method=LANE_RENAMED, params={"title": "wsd2"}
        )
        # Live, from its own publish (well before the hub's 3 s reconcile).
        (renamed,) = await frames(socket, 1, timeout=1.5)
        assert set(renamed) == FRAME_KEYS
        assert (renamed["seq"], renamed["method"]) == (2, "dispatch/lane/renamed")
        assert renamed["params"] == {"title": "wsd2", "threadId": THREAD}
        # The worker's counter is behind now; its next batch takes seq 3.
        last = await sync_to_async(journal_write_batch)([delta("b")], counter)
        await publisher.publish(last.frames)
        (after,) = await frames(socket, 1)
        assert (after["seq"], after["method"]) == (3, "item/agentMessage/delta")
        assert await socket.receive_nothing(timeout=0.3)
    finally:
        await socket.disconnect()
