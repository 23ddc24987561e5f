"""What a search is restricted to: dates, places, threads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.db import connection

from dispatchsite.core.errors import ValidationError


def date_bound(value: str | None, *, end: bool) -> datetime | None:
    """YYYY-MM-DD covers the whole day; ISO 8601 (with Z) is exact; UTC if naive."""
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"not a date: {value!r}",
            hint="use YYYY-MM-DD or ISO 8601 (e.g. 2026-05-01T12:00Z)",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def repo_root(path: str) -> str:
    here = Path(os.path.abspath(os.path.expanduser(path)))
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return str(candidate)
    raise ValidationError(
        f"--repo {path}: no git repository contains it",
        hint="pass a path inside a git checkout, or use --dir",
    )


def path_within(path: str, roots: list[str]) -> bool:
    if not path:
        return False
    resolved = os.path.abspath(path)
    return all(
        resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep)
        for root in roots
    )


def place_roots(*, directory: str | None, repo: str | None) -> list[str]:
    roots = []
    if directory:
        roots.append(os.path.abspath(os.path.expanduser(directory)))
    if repo:
        roots.append(repo_root(repo))
    return roots


@dataclass(frozen=True)
class ItemFilter:
    """Which indexed items a search looks at."""

    thread_ids: list[str] | None = None  # None: every thread
    exclude_thread_ids: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def date_clauses(self) -> tuple[list[str], list[Any]]:
        """SQL conditions on created_at, and their arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        if self.since is not None:
            clauses.append("created_at >= %s")
            args.append(connection.ops.adapt_datetimefield_value(self.since))
        if self.until is not None:
            clauses.append("created_at < %s")
            args.append(connection.ops.adapt_datetimefield_value(self.until))
        return clauses, args
