"""The worker's side of the approvals inbox: answering, holding, expiring.

The app-server client runs each server request in its own task, so a held
approval can wait here for minutes without stopping the journal. A held
request waits for its ServerRequest row to leave `pending` (see
lanes.worker.server_requests): the respond service wakes it over the
channel layer (`appserver.answered`), and it re-reads the row every
HELD_POLL_SECONDS anyway, since that wake-up may be lost. Whatever the one
winning UPDATE stored is what the app-server receives, once.

The worker journals its own dispatch events by putting them on its inbox,
so they take their seq in arrival order among the app-server's events.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.utils import timezone

from dispatchsite.core.config import load_policy
from lanes.journal.dispatch_events import (
    APPROVAL_ANSWERED,
    APPROVAL_PENDING,
    dispatch_event_message,
)
from lanes.models import ServerRequest
from lanes.worker.server_requests import (
    answered_event_params,
    held_request_outcome,
    held_request_time_out,
    held_requests_expire,
    pending_event_params,
    server_request_answer,
    server_request_record,
)

T = TypeVar("T")
# A held approval re-reads its row this often, in case the respond's
# wake-up was lost on the channel layer.
HELD_POLL_SECONDS = 1.0


def db(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    # The worker's one ORM thread, shared with the journal (lanes.worker.daemon).
    return sync_to_async(fn, thread_sensitive=True)


class ServerRequestDesk:
    def __init__(self, *, host: str, inbox: asyncio.Queue[dict[str, Any]]) -> None:
        self.host = host
        self.inbox = inbox
        # The current app-server connection; held requests belong to one.
        self.connection = ""
        # ServerRequest pk -> set when someone may have answered it.
        self.held: dict[int, asyncio.Event] = {}

    async def new_connection(self) -> str:
        """Start a connection; requests held on earlier ones can never be answered."""
        self.connection = uuid.uuid4().hex
        await self.expire(keep_connection=self.connection)
        return self.connection

    async def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        # Re-read (cached by mtime): an operator's edit applies to the next request.
        policy = await db(load_policy)()
        record = await db(server_request_record)(
            message=message, policy=policy, host=self.host, connection=self.connection
        )
        if not record.held:
            return await db(server_request_answer)(record=record, policy=policy)
        wake = self.held[record.pk] = asyncio.Event()
        try:
            self.journal_event(
                record.thread_id, APPROVAL_PENDING, pending_event_params(record)
            )
            return await self.wait_held(record, wake, policy.approval_timeout_s)
        finally:
            self.held.pop(record.pk, None)

    async def wait_held(
        self, record: ServerRequest, wake: asyncio.Event, timeout: float
    ) -> dict[str, Any]:
        """Wait until the held request leaves `pending`; return what decided it."""
        deadline = time.monotonic() + timeout
        while True:
            state, response = await db(held_request_outcome)(pk=record.pk)
            if state != ServerRequest.State.PENDING:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if await db(held_request_time_out)(pk=record.pk):
                    self.journal_event(
                        record.thread_id,
                        APPROVAL_ANSWERED,
                        answered_event_params(record, "decline", "timeout"),
                    )
                continue
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), min(HELD_POLL_SECONDS, remaining))
            except TimeoutError:
                pass
        if response is None:
            # Expired: codex resolved it itself, or its connection ended.
            raise ValueError(f"request {record.pk} is no longer pending ({state})")
        return dict(response)

    def wake(self, pk: Any) -> None:
        try:
            event = self.held.get(int(pk))
        except (TypeError, ValueError):
            return
        if event is not None:
            event.set()

    async def resolved(self, params: dict[str, Any]) -> None:
        """serverRequest/resolved: codex stopped waiting (e.g. an interrupt)."""
        await self.expire(
            connection=self.connection,
            request_ids=[params.get("requestId")],
            reason="resolved by the app-server",
        )

    async def expire(self, **which: Any) -> None:
        expired = await db(held_requests_expire)(host=self.host, **which)
        for record in expired:
            self.journal_event(
                record.thread_id,
                APPROVAL_ANSWERED,
                {
                    **answered_event_params(record, "", record.answered_by),
                    "expired": True,
                },
            )
            self.wake(record.pk)

    def journal_event(
        self, thread_id: str, method: str, params: dict[str, Any]
    ) -> None:
        if not thread_id:
            return
        message = dispatch_event_message(
            thread_id=thread_id, method=method, params=params
        )
        message["_received_at"] = timezone.now()
        message["_received_perf"] = time.perf_counter()
        self.inbox.put_nowait(message)
