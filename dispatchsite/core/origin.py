"""Who asked for a change: carried from the surface through the services into
the audit log, so a row says who acted, not only which door they came in by."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

Surface = Literal["cli", "rest", "mcp", "admin", "celery", "worker", "trigger", "test"]


@dataclass(frozen=True)
class Origin:
    surface: Surface
    # Stored in the audit log: "token:<name>", "admin:<user>", the OS user of
    # a local CLI (local_user()), "worker", "trigger:<id>".
    actor: str = ""
    # The Codex thread that called dispatch (CODEX_THREAD_ID), for self-targeting.
    caller_thread_id: str | None = None
    trigger_id: str = ""


def local_user() -> str:
    """Who runs an in-process CLI: the OS user, or "cli" when it has no name."""
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
        return "cli"


# The worker acts on its own (queued deliveries, answers to the app-server).
WORKER = Origin(surface="worker", actor="worker")
