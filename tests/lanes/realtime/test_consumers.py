"""The lane events websocket: replay, live, gap refill, bounded buffer, auth.

Events are recorded the way the worker records them (journal_write_batch)
and published with the worker's own `publish`, over the in-memory layer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from dispatchsite.asgi import application
from lanes.journal.bus import JOURNAL_GROUP
from lanes.journal.writer import JournalResult, SeqCounter, journal_write_batch
from lanes.models import Lane
from lanes.realtime import consumers, hub
from lanes.services import lane_register
from lanes.tokens import api_token_create
from lanes.worker import daemon as worker
from lanes.worker import publish
from tests.support.stack import FRAME_KEYS
from tests.support.ws import events_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

THREAD = "thread-alpha"
BETA = "thread-beta"


class Journal:
    """Records and publishes events exactly as the worker does."""

    def __init__(self) -> None:
        self.counter = SeqCounter()
        self.worker = worker.Worker(host="testhost")

    async def record(self, *deltas: str, thread_id: str = THREAD) -> JournalResult:
        messages = [
            {
                "method": "item/agentMessage/delta",
                "params": {
                    "threadId": thread_id,
                    "turnId": "turn-1",
                    "itemId": "msg-1",
                    "delta": delta,
                },
            }
            for delta in deltas
        ]
        return await sync_to_async(journal_write_batch)(messages, self.counter)

    async def publish(self, result: JournalResult) -> None:
        await self.worker.publish(result.frames)

    async def record_and_publish(self, *deltas: str) -> JournalResult:
        result = await self.record(*deltas)
        await self.publish(result)
        return result


@pytest.fixture(autouse=True)
def serialized_db(monkeypatch: pytest.MonkeyPatch) -> None:
    # The in-memory test database locks tables across connections; share one
    # thread with the test's own writes (production reads WAL concurrently).
    monkeypatch.setattr(hub, "THREAD_SENSITIVE", True)


@pytest.fixture
def lane() -> Lane:
    return lane_register(
        thread_id=THREAD, title="alpha", source="own", cwd="/srv/alpha", host="testhost"
    )


@pytest.fixture
def token() -> str:
    _token, raw = api_token_create(name="ws-test")
    return raw


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest_asyncio.fixture
async def connect(token: str) -> AsyncIterator[Any]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        path: str = f"/ws/lanes/{THREAD}/events",
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> WebsocketCommunicator:
        if headers is None:
            headers = [(b"authorization", f"Bearer {token}".encode())]
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        opened.append(communicator)
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()


# Frames that arrived in a message together with frames a test already took.
LEFTOVER: dict[int, list[dict[str, Any]]] = {}


async def receive_frames(
    communicator: WebsocketCommunicator, count: int
) -> list[dict[str, Any]]:
    """The next `count` frames; a message is one `{"events": [...]}` document."""
    frames = LEFTOVER.pop(id(communicator), [])
    while len(frames) < count:
        text = await communicator.receive_from(timeout=3)
        frames.extend(events_of(text))
    if frames[count:]:
        LEFTOVER[id(communicator)] = frames[count:]
    return frames[:count]


async def nothing_more(communicator: WebsocketCommunicator, timeout: float) -> bool:
    if LEFTOVER.get(id(communicator)):
        return False
    return bool(await communicator.receive_nothing(timeout=timeout))


async def receive_seqs(communicator: WebsocketCommunicator, count: int) -> list[int]:
    frames = await receive_frames(communicator, count)
    assert all(set(f) == FRAME_KEYS for f in frames), frames
    return [f["seq"] for f in frames]


async def close_code(communicator: WebsocketCommunicator) -> int:
    message = await communicator.receive_output(timeout=3)
    assert message["type"] == "websocket.close", message
    return int(message["code"])


async def test_it_replays_the_journal_after_a_seq(
    lane: Lane, journal: Journal, connect: Any
) -> None:
    await journal.record("a", "b", "c", "d", "e")
    socket = await connect(f"/ws/lanes/{lane.ref}/events?after=2")
    first = (await receive_frames(socket, 1))[0]
    assert first["method"] == "item/agentMessage/delta"
    assert first["params"]["delta"] == "c" and first["turn_id"] == "turn-1"
    assert [first["seq"], *await receive_seqs(socket, 2)] == [3, 4, 5]
    assert await nothing_more(socket, 0.3)


async def test_it_streams_live_after_the_replay_without_gap_or_duplicate(
    lane: Lane, journal: Journal, connect: Any
) -> None:
    replayed = await journal.record("a", "b", "c")
    socket = await connect()
    # Overlaps the replay: an old batch published late must not repeat.
    await journal.publish(replayed)
    await journal.record_and_publish("d", "e")
    await journal.record_and_publish("f")
    assert await receive_seqs(socket, 6) == [1, 2, 3, 4, 5, 6]
    assert await nothing_more(socket, 0.3)


async def test_it_starts_at_the_end_with_after_latest(
    lane: Lane, journal: Journal, connect: Any
) -> None:
    await journal.record("a", "b")
    socket = await connect(f"/ws/lanes/{THREAD}/events?after=latest")
    await journal.record_and_publish("c")
    assert await receive_seqs(socket, 1) == [3]


async def test_it_refills_a_gap_when_a_group_message_is_dropped(
    lane: Lane, journal: Journal, connect: Any
) -> None:
    socket = await connect()
    await journal.record_and_publish("a", "b")
    assert await receive_seqs(socket, 2) == [1, 2]
    await journal.record("c", "d")  # journaled, but the layer dropped it
    await journal.record_and_publish("e")
    assert await receive_seqs(socket, 3) == [3, 4, 5]
    assert await nothing_more(socket, 0.3)


async def test_it_refills_a_dropped_last_message_without_a_later_one(
    lane: Lane, journal: Journal, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "RECONCILE_SECONDS", 0.05)
    socket = await connect()
    await journal.record_and_publish("a")
    assert await receive_seqs(socket, 1) == [1]
    await journal.record("b", "c")  # the layer dropped it; nothing follows
    assert await receive_seqs(socket, 2) == [2, 3]
    assert await nothing_more(socket, 0.3)


class BusyLayer:
    """Messages for no watched lane, published `age` s ago, every 20 ms: a
    layer that is busy (and, with an age, behind)."""

    def __init__(self, age: float) -> None:
        self.age = age
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        layer = get_channel_layer()
        while True:
            message = {"batches": [], "published_at": time.time() - self.age}
            await layer.group_send(JOURNAL_GROUP, {"type": "lanes.events", **message})
            await asyncio.sleep(0.02)

    def __enter__(self) -> BusyLayer:
        self.task = asyncio.create_task(self.run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()


async def live_socket_on_a_fast_hub(
    journal: Journal, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A socket past its first live event, on a hub reconciling every 50 ms
    that counts any message published after a row as proof of its loss."""
    monkeypatch.setattr(hub, "RECONCILE_SECONDS", 0.05)
    monkeypatch.setattr(hub, "PUBLISH_MARGIN_SECONDS", 0.0)
    socket = await connect()
    await journal.record_and_publish("a")
    assert await receive_seqs(socket, 1) == [1]
    return socket


async def test_it_waits_for_a_late_message_rather_than_reading_the_journal(
    lane: Lane, journal: Journal, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = await live_socket_on_a_fast_hub(journal, connect, monkeypatch)
    with BusyLayer(age=60):
        late = await journal.record("b", "c")  # its message is still queued
        assert await nothing_more(socket, 0.4)  # eight ticks: no journal read
        await journal.publish(late)
        assert await receive_seqs(socket, 2) == [2, 3]
    assert await nothing_more(socket, 0.3)


async def test_it_refills_a_dropped_message_while_the_layer_is_busy(
    lane: Lane, journal: Journal, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = await live_socket_on_a_fast_hub(journal, connect, monkeypatch)
    with BusyLayer(age=0):
        await journal.record("b", "c")  # dropped: newer messages arrive
        assert await receive_seqs(socket, 2) == [2, 3]
    assert await nothing_more(socket, 0.3)


async def test_it_takes_one_message_for_all_lanes_of_a_batch(
    lane: Lane, journal: Journal, connect: Any
) -> None:
    from channels.layers import get_channel_layer

    socket = await connect()
    assert await nothing_more(socket, 0.1)  # replay done: only live now
    result = await journal.record("a", "b")
    texts = [json.dumps(frame) for _thread, frame in result.frames]
    other = {"thread_id": "thread-other", "first_seq": 1, "last_seq": 1}
    ours = {"thread_id": THREAD, "first_seq": 1, "last_seq": 2, "texts": texts}
    await get_channel_layer().group_send(
        JOURNAL_GROUP, {"type": "lanes.events", "batches": [other, ours]}
    )
    assert await receive_seqs(socket, 2) == [1, 2]
    assert await nothing_more(socket, 0.3)


async def test_it_reads_large_batches_from_the_journal(
    lane: Lane, journal: Journal, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "FRAME_BYTES_LIMIT", 0)  # every batch as a range
    socket = await connect()
    await journal.record_and_publish("a", "b", "c")
    assert await receive_seqs(socket, 3) == [1, 2, 3]


async def test_it_pages_replays_longer_than_one_query(
    lane: Lane, journal: Journal, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "PAGE_SIZE", 4)
    await journal.record(*"abcdefghij")
    socket = await connect()
    await journal.record_and_publish("k")
    assert await receive_seqs(socket, 11) == list(range(1, 12))


async def test_it_bounds_the_buffer_of_a_slow_client(
    lane: Lane, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "MAX_PENDING", 5)
    consumer = consumers.LaneEventsConsumer()
    consumer.begin({THREAD: 0})
    sent: list[int] = []
    high_water = 0

    async def slow_send(text_data: str) -> None:
        await asyncio.sleep(0.005)  # a client that reads slowly
        sent.extend(f["seq"] for f in events_of(text_data))

    consumer.send = slow_send  # type: ignore[method-assign,assignment]
    pump = asyncio.create_task(consumer.pump())
    try:
        for n in range(60):
            result = await journal.record(f"d{n}")
            part = {
                "thread_id": THREAD,
                "first_seq": n + 1,
                "last_seq": n + 1,
                "texts": [json.dumps(f) for _t, f in result.frames],
            }
            consumer.feed([part])
            high_water = max(high_water, consumer.pending_frames)
        for _ in range(300):
            if len(sent) >= 60:
                break
            await asyncio.sleep(0.01)
    finally:
        pump.cancel()
    assert high_water <= 5
    assert sent == list(range(1, 61))


@pytest.fixture
def beta() -> Lane:
    return lane_register(
        thread_id=BETA, title="beta", source="own", cwd="/srv/beta", host="testhost"
    )


async def test_it_streams_many_lanes_over_one_socket(
    lane: Lane, beta: Lane, journal: Journal, connect: Any
) -> None:
    await journal.record("a", "b")
    await journal.record("x", thread_id=BETA)
    socket = await connect(f"/ws/events?lane={lane.ref}&lane=beta")
    replayed = await receive_frames(socket, 3)
    assert sorted((f["thread_id"], f["seq"]) for f in replayed) == [
        (THREAD, 1),
        (THREAD, 2),
        (BETA, 1),
    ]
    assert await nothing_more(socket, 0.1)
    ours = await journal.record("c")
    theirs = await journal.record("y", "z", thread_id=BETA)
    await journal.worker.publish(ours.frames + theirs.frames)
    # One batch touching both lanes arrives as one message, one document.
    text = await socket.receive_from(timeout=3)
    document = json.loads(text)
    assert list(document) == ["events"]
    frames = document["events"]
    assert all(set(f) == FRAME_KEYS for f in frames)
    assert [(f["thread_id"], f["seq"]) for f in frames] == [
        (THREAD, 3),
        (BETA, 2),
        (BETA, 3),
    ]
    assert await nothing_more(socket, 0.3)


async def test_it_refills_each_lane_of_a_many_lane_socket(
    lane: Lane, beta: Lane, journal: Journal, connect: Any
) -> None:
    socket = await connect(f"/ws/events?lane={THREAD}&lane={BETA}")
    assert await nothing_more(socket, 0.1)
    await journal.record("a", thread_id=BETA)  # journaled; the layer dropped it
    ours = await journal.record("b")
    theirs = await journal.record("c", thread_id=BETA)
    await journal.worker.publish(ours.frames + theirs.frames)
    frames = await receive_frames(socket, 3)
    assert [f["seq"] for f in frames if f["thread_id"] == BETA] == [1, 2]
    assert [f["seq"] for f in frames if f["thread_id"] == THREAD] == [1]
    assert await nothing_more(socket, 0.3)


async def test_it_takes_an_after_per_lane(
    lane: Lane, beta: Lane, journal: Journal, connect: Any
) -> None:
    await journal.record("a", "b")
    await journal.record("x", thread_id=BETA)
    socket = await connect(f"/ws/events?lane={THREAD}&after=1&lane={BETA}&after=latest")
    assert await receive_seqs(socket, 1) == [2]
    assert await nothing_more(socket, 0.3)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", 4400),
        (f"?lane={THREAD}&lane={BETA}&after=1&after=2&after=3", 4400),
        (f"?lane={THREAD}&after=soon", 4400),
        (f"?lane={THREAD}&lane=@nope", 4404),
    ],
)
async def test_it_refuses_a_bad_many_lane_request(
    lane: Lane, beta: Lane, connect: Any, query: str, code: int
) -> None:
    socket = await connect(f"/ws/events{query}")
    assert await close_code(socket) == code


async def test_it_closes_4401_without_a_valid_token(lane: Lane, connect: Any) -> None:
    anonymous = await connect(headers=[])
    assert await close_code(anonymous) == 4401
    wrong = await connect(headers=[(b"authorization", b"Bearer dsp_nottherightone")])
    assert await close_code(wrong) == 4401


async def test_it_accepts_a_token_in_the_query_string(
    lane: Lane, journal: Journal, token: str, connect: Any
) -> None:
    await journal.record("a")
    socket = await connect(f"/ws/lanes/{THREAD}/events?token={token}", headers=[])
    assert await receive_seqs(socket, 1) == [1]


async def test_it_closes_4404_for_an_unknown_lane(lane: Lane, connect: Any) -> None:
    socket = await connect("/ws/lanes/@nope/events")
    assert await close_code(socket) == 4404


async def test_it_closes_4400_for_a_bad_after(lane: Lane, connect: Any) -> None:
    socket = await connect(f"/ws/lanes/{THREAD}/events?after=soon")
    assert await close_code(socket) == 4400


def staff_session_cookie(*, staff: bool) -> bytes:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_user(f"u{int(staff)}", password="pw", is_staff=staff)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_it_accepts_a_staff_session_from_the_same_origin(
    lane: Lane, journal: Journal, connect: Any
) -> None:
    await journal.record("a")
    cookie = await sync_to_async(staff_session_cookie)(staff=True)
    same = [
        (b"cookie", cookie),
        (b"host", b"127.0.0.1:8765"),
        (b"origin", b"http://127.0.0.1:8765"),
    ]
    assert await receive_seqs(await connect(headers=same), 1) == [1]
    other = [
        (b"cookie", cookie),
        (b"host", b"127.0.0.1:8765"),
        (b"origin", b"http://evil.example"),
    ]
    assert await close_code(await connect(headers=other)) == 4401


async def test_it_refuses_a_session_without_staff(lane: Lane, connect: Any) -> None:
    cookie = await sync_to_async(staff_session_cookie)(staff=False)
    socket = await connect(headers=[(b"cookie", cookie)])
    assert await close_code(socket) == 4401
