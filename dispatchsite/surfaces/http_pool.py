"""The REST API served from a fixed pool of threads that keep their database
connection.

Django's ASGI handler runs each request's sync code on a thread made for that
request and opens a new database connection there: about half of a small
request's CPU in the one web process, which capped the API near 150
requests/s on this project's VM. The API's views are sync and its answers
are whole JSON bodies, so `/api/` goes through Django's WSGI handler on
long-lived threads instead, each keeping its connection
(dispatchsite.core.dbthreads). The admin, the live page and static files
stay on the ASGI handler.

The pools are also the cap on requests running at once. The event loop
writes every websocket frame, and each runnable thread is one more
contender for the GIL, so a burst of requests waits in the loop's queue for
one of WORK_THREADS threads rather than starving the websockets. A
long-polling `watch` (`.../watch`) mostly sleeps between journal reads, so
it gets a pool of its own, WAIT_THREADS wide, where waiting polls cannot
hold up other requests.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.core.handlers.wsgi import WSGIHandler

from dispatchsite.core.dbthreads import connection_keeping_pool

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]

WORK_THREADS = 6
WAIT_THREADS = 32
BODY_IN_MEMORY = 256 * 1024


def _environ(scope: Scope, body: IO[bytes]) -> dict[str, Any]:
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin1"),
        "PATH_INFO": scope["path"].encode().decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("latin1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 0),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = "HTTP_" + name
        value = raw_value.decode("latin1")
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    # daphne has the whole body (a chunked upload included): say how long it
    # is, as Django's WSGI request reads no further than CONTENT_LENGTH.
    environ["CONTENT_LENGTH"] = str(body.seek(0, 2))
    body.seek(0)
    return environ


class PooledWsgi:
    """An ASGI app answering HTTP with a WSGI handler on a thread pool."""

    def __init__(self, handler: WSGIHandler) -> None:
        self.handler = handler
        self.work = self._responder("api", WORK_THREADS)
        self.wait = self._responder("api-watch", WAIT_THREADS)

    def _responder(
        self, name: str, threads: int
    ) -> Callable[[Scope, IO[bytes]], Awaitable[Response]]:
        pool = connection_keeping_pool(name, threads)
        # asgiref's SyncToAsync on our pool marks each thread as serving this
        # event loop, so a view's async_to_sync (a channel-layer publish) runs
        # on the server's loop and its Redis connections, not on a new loop
        # and a new connection per call.
        return sync_to_async(self._respond, thread_sensitive=False, executor=pool)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with SpooledTemporaryFile(max_size=BODY_IN_MEMORY) as body:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
            respond = self.wait if scope["path"].endswith("/watch") else self.work
            status, headers, content = await respond(scope, body)
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})

    def _respond(self, scope: Scope, body: IO[bytes]) -> Response:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], *_: Any
        ) -> Callable[[bytes], object]:
            started[:] = [status, headers]
            return written.append

        chunks: Iterable[bytes] = self.handler(_environ(scope, body), start_response)
        try:
            content = b"".join([*written, *chunks])
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # sends request_finished, which returns the connection
        status, headers = started
        return (
            int(status.split(" ", 1)[0]),
            [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers],
            content,
        )
