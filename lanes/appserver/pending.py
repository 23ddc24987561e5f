"""Requests sent to the app-server and not answered yet, matched by id."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from lanes.appserver.framing import JsonDict, response_error


class PendingRequests:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._futures: dict[int, asyncio.Future[Any]] = {}

    def open(self) -> tuple[int, asyncio.Future[Any]]:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        return request_id, future

    def forget(self, request_id: int) -> None:
        self._futures.pop(request_id, None)

    def resolve(self, message: JsonDict) -> bool:
        """Settle the future a response answers; False when nobody waits for it."""
        request_id = message.get("id")
        future = self._futures.get(request_id) if isinstance(request_id, int) else None
        if future is None or future.done():
            return False
        error = message.get("error")
        if error is None:
            future.set_result(message.get("result"))
        else:
            future.set_exception(response_error(error))
        return True

    def fail_all(self, error: BaseException) -> None:
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)
        self._futures.clear()
