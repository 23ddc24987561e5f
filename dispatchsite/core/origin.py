"""Who asked for a change: carried from the surface through the services into
the audit log, so a row says who acted, not only which door they came in by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Surface = Literal["cli", "rest", "mcp", "admin", "celery", "worker", "test"]


@dataclass(frozen=True)
class Origin:
    surface: Surface
    # "token:<name>", "admin:<user>", "trigger:<name>"; empty for the local CLI.
    actor: str = ""
    # The Codex thread that called dispatch (CODEX_THREAD_ID), for self-targeting.
    caller_thread_id: str | None = None
    trigger_id: str = ""


# The worker acts on its own (queued deliveries, answers to the app-server).
WORKER = Origin(surface="worker")
