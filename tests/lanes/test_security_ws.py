"""A token revoked while its websocket is open closes that socket (4401)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from dispatchsite.asgi import application
from lanes.realtime import hub
from lanes.services import lane_register
from lanes.tokens import api_token_create, api_token_revoke

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

THREAD = "thread-revoked"
CLOSE_UNAUTHORIZED = 4401


@pytest.fixture(autouse=True)
def fast_recheck(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.DISPATCH_WS_TOKEN_RECHECK_SECONDS = 1
    # The in-memory test database locks across connections: share one thread.
    monkeypatch.setattr(hub, "THREAD_SENSITIVE", True)


async def open_socket(raw: str, path: str) -> WebsocketCommunicator:
    await sync_to_async(lane_register)(
        thread_id=THREAD, title="revoked", source="own", cwd="/srv", host="testhost"
    )
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.mark.parametrize(
    "path", [f"/ws/lanes/{THREAD}/events", f"/ws/events?lane={THREAD}"]
)
async def test_it_closes_a_socket_whose_token_is_revoked(path: str) -> None:
    _token, raw = await sync_to_async(api_token_create)(name="soon-revoked")
    communicator = await open_socket(raw, path)
    # Still open after a recheck while the token is live.
    assert await communicator.receive_nothing(timeout=1.5)
    await sync_to_async(api_token_revoke)(name="soon-revoked")
    started = asyncio.get_running_loop().time()
    message = await communicator.receive_output(timeout=5)
    assert message == {
        "type": "websocket.close",
        "code": CLOSE_UNAUTHORIZED,
        "reason": "token revoked or expired",
    }
    assert asyncio.get_running_loop().time() - started < 3
    await communicator.wait()
