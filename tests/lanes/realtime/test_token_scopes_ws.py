"""Websockets under scoped tokens: a lane-scoped token follows only its lanes
(4403 otherwise), and a token that expires while its socket is open closes
it with 4401 within DISPATCH_WS_TOKEN_RECHECK_SECONDS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from dispatchsite.asgi import application
from lanes.models import ApiToken, Lane
from lanes.realtime import hub
from lanes.services import lane_register
from lanes.tokens import api_token_create

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ALPHA = "thread-alpha"
BETA = "thread-beta"


@pytest.fixture(autouse=True)
def serialized_db(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.DISPATCH_WS_TOKEN_RECHECK_SECONDS = 1
    # The in-memory test database locks across connections: share one thread.
    monkeypatch.setattr(hub, "THREAD_SENSITIVE", True)


@pytest.fixture
def lanes() -> list[Lane]:
    return [
        lane_register(
            thread_id=thread_id, title=title, source="own", cwd="/srv", host="t"
        )
        for thread_id, title in ((ALPHA, "alpha"), (BETA, "beta"))
    ]


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Any]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(raw: str, path: str) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(
            application, path, headers=[(b"authorization", f"Bearer {raw}".encode())]
        )
        connected, _ = await communicator.connect()
        assert connected
        opened.append(communicator)
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()


async def close_code(communicator: WebsocketCommunicator) -> int | None:
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    code: int | None = message.get("code")
    return code


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"/ws/lanes/{ALPHA}/events", None),
        ("/ws/lanes/@alpha/events", None),
        (f"/ws/events?lane={ALPHA}", None),
        (f"/ws/lanes/{BETA}/events", 4403),
        (f"/ws/events?lane={ALPHA}&lane={BETA}", 4403),
        ("/ws/lanes/@nope/events", 4403),  # unknown looks like foreign
    ],
)
async def test_it_lets_a_lane_scoped_token_follow_only_its_lanes(
    lanes: list[Lane], connect: Any, path: str, code: int | None
) -> None:
    _token, raw = await sync_to_async(api_token_create)(
        name="alpha-only", lanes=["@alpha"], read_only=True
    )
    socket = await connect(raw, path)
    if code is None:
        assert await socket.receive_nothing(timeout=0.5)
    else:
        assert await close_code(socket) == code


async def test_it_still_answers_4404_to_an_unscoped_token(
    lanes: list[Lane], connect: Any
) -> None:
    _token, raw = await sync_to_async(api_token_create)(name="everything")
    assert await close_code(await connect(raw, "/ws/lanes/@nope/events")) == 4404


@pytest.mark.parametrize(
    "path", [f"/ws/lanes/{ALPHA}/events", f"/ws/events?lane={ALPHA}"]
)
async def test_it_closes_a_socket_whose_token_expires(
    lanes: list[Lane], connect: Any, path: str
) -> None:
    _token, raw = await sync_to_async(api_token_create)(name="brief", expires="1h")
    socket = await connect(raw, path)
    assert await socket.receive_nothing(timeout=1.5)  # live: still open

    def expire() -> None:
        ApiToken.objects.filter(name="brief").update(
            created_at=timezone.now() - timedelta(hours=1),
            expires_at=timezone.now(),
        )

    await sync_to_async(expire)()
    started = asyncio.get_running_loop().time()
    assert await close_code(socket) == 4401
    assert asyncio.get_running_loop().time() - started < 3
