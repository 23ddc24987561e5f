"""`dispatch search`: index matches (ranked), then app-server ones, and the
cursor that pages the index."""

from __future__ import annotations

from typing import Any

from dispatchsite.core.errors import ValidationError
from lanes.history.search.app_server import (
    search_app_server,
    search_thread_occurrences,
)
from lanes.history.search.filters import (
    ItemFilter,
    date_bound,
    path_within,
    place_roots,
)
from lanes.history.search.index import search_index
from lanes.history.search.query import query_parse
from lanes.models import Lane
from lanes.selectors import find_lane


def cursor_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(cursor.removeprefix("index:"))
    except ValueError:
        offset = -1
    if offset < 0:
        raise ValidationError(
            f"not a search cursor: {cursor!r}",
            hint="pass next_cursor from a previous search",
        )
    return offset


def search_run(
    *,
    query: str,
    lane: str | None = None,
    directory: str | None = None,
    repo: str | None = None,
    since: str | None = None,
    until: str | None = None,
    scope: str = "all",
    limit: int = 20,
    max_scan: int = 200,
    cursor: str | None = None,
    host: str,
) -> dict[str, Any]:
    """SearchOutput: index matches (ranked), then app-server ones (--unmanaged)."""
    if limit > max_scan:
        raise ValidationError(
            f"--limit {limit} is larger than --max-scan {max_scan}",
            hint="raise --max-scan or lower --limit",
        )
    parsed = query_parse(query)
    lower, upper = date_bound(since, end=False), date_bound(until, end=True)
    if lower and upper and lower >= upper:
        raise ValidationError("--since is not before --until", hint="swap them")
    roots = place_roots(directory=directory, repo=repo)
    offset = cursor_offset(cursor)
    managed_ids = list(Lane.objects.values_list("thread_id", flat=True))
    thread_ids: list[str] | None = None
    exclude: list[str] | None = None
    one_thread: str | None = None
    if lane:
        found = find_lane(lane)
        one_thread = found.thread_id if found is not None else lane.strip()
        if found is not None and scope == "unmanaged":
            raise ValidationError(
                f"--unmanaged, but {lane!r} is the managed lane {found.ref}",
                hint="drop --unmanaged to search a managed lane",
            )
        thread_ids = [one_thread]
    if roots:
        within = [
            t
            for t, cwd in Lane.objects.values_list("thread_id", "cwd")
            if path_within(cwd, roots)
        ]
        thread_ids = (
            within if thread_ids is None else [t for t in thread_ids if t in within]
        )
    if scope == "managed":
        thread_ids = (
            managed_ids
            if thread_ids is None
            else [t for t in thread_ids if t in set(managed_ids)]
        )
    elif scope == "unmanaged":
        if thread_ids is None:
            exclude = managed_ids
        else:
            thread_ids = [t for t in thread_ids if t not in set(managed_ids)]
    matches, more, scanned = search_index(
        parsed=parsed,
        where=ItemFilter(
            thread_ids=thread_ids,
            exclude_thread_ids=exclude,
            since=lower,
            until=upper,
        ),
        limit=limit,
        offset=offset,
    )
    experimental = False
    if scope == "unmanaged" and offset == 0:
        experimental = True
        words = parsed.highlight_words
        if one_thread is not None:
            if one_thread not in managed_ids:
                remote = search_thread_occurrences(
                    host=host,
                    thread_id=one_thread,
                    query=query,
                    words=words,
                    limit=limit,
                )
                known = {m["item_id"] for m in matches}
                matches += [m for m in remote if m["item_id"] not in known]
        else:
            remote, remote_scanned = search_app_server(
                host=host,
                query=query,
                words=words,
                limit=limit,
                max_scan=max_scan,
                roots=roots,
                since=lower,
                until=upper,
            )
            scanned += remote_scanned
            indexed = {m["id"] for m in matches}
            matches += [m for m in remote if m["id"] not in indexed]
    return {
        "query": query,
        "matches": matches,
        "scanned": scanned,
        "next_cursor": f"index:{offset + limit}" if more else None,
        "experimental": experimental,
    }
