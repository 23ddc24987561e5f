"""Thread pools whose threads keep their database connection.

The project's CONN_MAX_AGE is 0, the right thing for Django's own handlers:
under ASGI each request runs on a thread made for it, and a connection kept
there would outlive its thread. So every call from those handlers opens a
connection (on SQLite: connect, the WAL pragmas, the functions registered),
which is most of a small query's cost. Work that runs many small queries off
the event loop (the REST API, the websockets' journal reads) runs on these
pools instead: long-lived threads, each with connections kept for
CONNECTION_MAX_AGE s and health-checked before reuse by the usual
close_old_connections around each call.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.db import connections
from django.db.utils import load_backend

CONNECTION_MAX_AGE = 300


def keep_connections() -> None:
    """Give the calling thread connections that outlive one call."""
    for alias in connections:
        settings = {
            **connections.settings[alias],
            "CONN_MAX_AGE": CONNECTION_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
        }
        connections[alias] = load_backend(settings["ENGINE"]).DatabaseWrapper(
            settings, alias
        )


def connection_keeping_pool(name: str, threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=threads, thread_name_prefix=name, initializer=keep_connections
    )
