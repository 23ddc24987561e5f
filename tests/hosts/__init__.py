"""Helpers for the several-hosts tests: a database every process shares.

With DATABASE_URL pointing at Postgres (as .ci/run exports it) each test gets
a fresh database on that server; otherwise a SQLite file under the test's
temporary folder, which processes on one machine can share too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


@contextmanager
def shared_database(root: Path) -> Iterator[str]:
    """A DATABASE_URL for the processes of one test, dropped afterwards."""
    server = postgres_url()
    if server is None:
        yield f"sqlite:///{root / 'shared.sqlite3'}"
        return
    import psycopg

    name = f"dispatch_hosts_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(server)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
