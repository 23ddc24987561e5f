"""Full-text search over the item index, plus Codex's own `thread/search`.

The local index covers every item the journal or a sync has seen: SQLite
FTS5 ranked by bm25, or a GIN tsvector index ranked by ts_rank on Postgres
(both created by migration 0002). `--unmanaged` also pages the app-server's
experimental `thread/search` for threads no lane manages; those matches are
per thread, with Codex's snippet.

User text is never passed through as query syntax: words become quoted
terms (all must match), "double quotes" make a phrase, a trailing * a
prefix and a leading - excludes a word.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.db import connection

from dispatchsite.core.errors import ValidationError
from lanes.appserver.protocol import thread_status
from lanes.models import Lane
from lanes.models.index import LaneItem
from lanes.presenters import (
    preview_text,
    thread_action_ref,
    unix_iso,
)
from lanes.worker import gateway

SNIPPET_CHARS = 200
# Matches ranked per query: the newest this many (after filters). A term in
# more items than this is ranked among its newest matches; more words narrow.
RANK_WINDOW = 5000
PREFIX_MIN_CHARS = 3
REMOTE_MAX_PAGE = 100
TERM = re.compile(r'(-?)"([^"]*)"|(\S+)')
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Term:
    text: str
    prefix: bool = False
    negated: bool = False
    phrase: bool = False

    @property
    def words(self) -> list[str]:
        return WORD.findall(self.text.lower())


@dataclass
class ParsedQuery:
    terms: list[Term] = field(default_factory=list)

    @property
    def positive(self) -> list[Term]:
        return [t for t in self.terms if not t.negated]

    @property
    def highlight_words(self) -> list[str]:
        return [w for t in self.positive for w in t.words]


def query_parse(text: str) -> ParsedQuery:
    terms: list[Term] = []
    for match in TERM.finditer(text):
        if match.group(2) is not None:
            phrase = match.group(2).strip()
            if WORD.search(phrase):
                terms.append(Term(phrase, negated=bool(match.group(1)), phrase=True))
            continue
        raw = match.group(3)
        negated = raw.startswith("-") and len(raw) > 1
        raw = raw[1:] if negated else raw
        prefix = raw.endswith("*")
        raw = raw.rstrip("*")
        if prefix and len("".join(WORD.findall(raw))) < PREFIX_MIN_CHARS:
            # Shorter prefixes match thousands of words: the index keeps
            # 3-character prefixes (migration 0002) and no shorter ones.
            raise ValidationError(
                f"prefix {raw}* is too short",
                hint=f"give at least {PREFIX_MIN_CHARS} characters before *",
            )
        if WORD.search(raw):
            terms.append(Term(raw, prefix=prefix, negated=negated))
    parsed = ParsedQuery(terms)
    if not parsed.positive:
        raise ValidationError(
            f"search query {text!r} has no words to look for",
            hint='pass at least one word; use "..." for a phrase, word* for a prefix',
        )
    return parsed


def fts5_match(parsed: ParsedQuery) -> str:
    """An FTS5 MATCH expression in which every user term is a quoted string."""

    def quoted(term: Term) -> str:
        body = '"' + term.text.replace('"', '""') + '"'
        return body + ("*" if term.prefix else "")

    positive = " AND ".join(quoted(t) for t in parsed.positive)
    negative = "".join(f" NOT {quoted(t)}" for t in parsed.terms if t.negated)
    return positive + negative


def tsquery_text(parsed: ParsedQuery) -> str:
    """A to_tsquery('simple', ...) expression built from plain words only."""

    def lexemes(term: Term) -> str:
        words = term.words
        if term.prefix and words:
            words[-1] += ":*"
        return "(" + (" <-> " if term.phrase else " & ").join(words) + ")"

    positive = " & ".join(lexemes(t) for t in parsed.positive if t.words)
    negative = "".join(
        f" & !{lexemes(t)}" for t in parsed.terms if t.negated and t.words
    )
    return positive + negative


# -- dates and places ----------------------------------------------------------


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


# -- snippets ------------------------------------------------------------------


def snippet(text: str, words: list[str], *, width: int = SNIPPET_CHARS) -> str:
    """At most `width` chars of `text` around the first query word, matches in [ ]."""
    flat = re.sub(r"\s+", " ", text).strip()
    if not flat:
        return ""
    alternatives = sorted(set(words), key=len, reverse=True)
    pattern = (
        re.compile(
            r"(?<!\w)(" + "|".join(re.escape(w) for w in alternatives) + ")",
            re.IGNORECASE,
        )
        if words
        else None
    )
    first = pattern.search(flat) if pattern else None
    start = max(0, first.start() - width // 3) if first is not None else 0
    # Room for the ellipses and the brackets of the matches shown.
    body = flat[start : start + width - 2]
    if pattern is not None:
        body = pattern.sub(lambda m: f"[{m.group(0)}]", body)
    head = "…" if start > 0 else ""
    cut = len(head) + len(body) > width or start + width - 2 < len(flat)
    if cut:
        body = body[: width - len(head) - 1].rstrip("[") + "…"
    return head + body


# -- the local index -----------------------------------------------------------


@dataclass
class ItemHit:
    item: LaneItem
    score: float


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


def placeholders(values: list[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def fts_candidates(
    *, parsed: ParsedQuery, where: ItemFilter, limit: int, offset: int
) -> tuple[list[tuple[int, float]], int]:
    """(item pk, score) best first (lower scores rank higher), and how many
    candidates were ranked: the newest RANK_WINDOW matches at most."""
    vendor = connection.vendor
    if where.thread_ids is not None and not where.thread_ids:
        return [], 0
    if vendor not in ("sqlite", "postgresql"):
        rows = substring_candidates(
            parsed=parsed, where=where, limit=limit, offset=offset
        )
        return rows, len(rows)
    if vendor == "sqlite":
        inner, inner_args = sqlite_window(match=fts5_match(parsed), where=where)
        sql = (
            "SELECT id, score, count(*) OVER () FROM ("
            f"{inner}) ORDER BY score, id DESC LIMIT %s OFFSET %s"
        )
    else:
        inner, inner_args = postgres_window(query=tsquery_text(parsed), where=where)
        sql = (
            "SELECT w.id, -ts_rank(to_tsvector('simple'::regconfig, w.text), "
            "to_tsquery('simple', %s)) AS score, count(*) OVER () FROM ("
            f"{inner}) w ORDER BY score, w.id DESC LIMIT %s OFFSET %s"
        )
        inner_args = [tsquery_text(parsed), *inner_args]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*inner_args, limit, offset])
        fetched = cursor.fetchall()
    ranked = int(fetched[0][2]) if fetched else 0
    return [(int(pk), float(score)) for pk, score, _n in fetched], ranked


def sqlite_window(*, match: str, where: ItemFilter) -> tuple[str, list[Any]]:
    """The newest RANK_WINDOW matches (after filters) with their bm25 scores.

    FTS5 walks a term's matches in rowid order and stops after the window,
    so a term in half of a million items costs what a rare one does; bm25 is
    computed only for the rows in the window.
    """
    window = f"ORDER BY lanes_laneitem_fts.rowid DESC LIMIT {RANK_WINDOW}"
    score = "bm25(lanes_laneitem_fts) AS score"
    dates, date_args = where.date_clauses()
    if where.thread_ids is not None:
        # `+rowid`: test membership while FTS5 walks the matches; as a plain
        # constraint SQLite would seek the doclist once per listed item.
        clauses = [f"thread_id IN ({placeholders(where.thread_ids)})", *dates]
        sql = (
            f"SELECT rowid AS id, {score} FROM lanes_laneitem_fts "
            "WHERE lanes_laneitem_fts MATCH %s AND +rowid IN "
            f"(SELECT id FROM lanes_laneitem WHERE {' AND '.join(clauses)}) {window}"
        )
        return sql, [match, *where.thread_ids, *date_args]
    excluded = where.exclude_thread_ids
    if excluded or dates:
        clauses = [f"i.{clause}" for clause in dates]
        args: list[Any] = [match]
        if excluded:
            clauses.append(f"i.thread_id NOT IN ({placeholders(excluded)})")
            args += excluded
        sql = (
            f"SELECT i.id AS id, {score} FROM lanes_laneitem_fts "
            "JOIN lanes_laneitem i ON i.id = lanes_laneitem_fts.rowid "
            f"WHERE lanes_laneitem_fts MATCH %s AND {' AND '.join(clauses)} {window}"
        )
        return sql, [*args, *date_args]
    sql = (
        f"SELECT rowid AS id, {score} FROM lanes_laneitem_fts "
        f"WHERE lanes_laneitem_fts MATCH %s {window}"
    )
    return sql, [match]


def postgres_window(*, query: str, where: ItemFilter) -> tuple[str, list[Any]]:
    """The newest RANK_WINDOW matches; the GIN index answers the @@ test."""
    clauses = ["to_tsvector('simple'::regconfig, text) @@ to_tsquery('simple', %s)"]
    args: list[Any] = [query]
    if where.thread_ids is not None:
        clauses.append(f"thread_id IN ({placeholders(where.thread_ids)})")
        args += where.thread_ids
    if where.exclude_thread_ids:
        clauses.append(f"thread_id NOT IN ({placeholders(where.exclude_thread_ids)})")
        args += where.exclude_thread_ids
    dates, date_args = where.date_clauses()
    clauses += dates
    sql = (
        f"SELECT id, text FROM lanes_laneitem WHERE {' AND '.join(clauses)} "
        f"ORDER BY id DESC LIMIT {RANK_WINDOW}"
    )
    return sql, [*args, *date_args]


def substring_candidates(
    *, parsed: ParsedQuery, where: ItemFilter, limit: int, offset: int
) -> list[tuple[int, float]]:
    items = LaneItem.objects.all()
    for term in parsed.positive:
        items = items.filter(text__icontains=term.text)
    for term in parsed.terms:
        if term.negated:
            items = items.exclude(text__icontains=term.text)
    if where.thread_ids is not None:
        items = items.filter(thread_id__in=where.thread_ids)
    if where.exclude_thread_ids:
        items = items.exclude(thread_id__in=where.exclude_thread_ids)
    if where.since is not None:
        items = items.filter(created_at__gte=where.since)
    if where.until is not None:
        items = items.filter(created_at__lt=where.until)
    pks = items.order_by("-created_at", "-id").values_list("pk", flat=True)
    return [(pk, 0.0) for pk in pks[offset : offset + limit]]


def item_match(
    item: LaneItem, lane: Lane | None, *, score: float, words: list[str]
) -> dict[str, Any]:
    return {
        **thread_identity(lane, thread_id=item.thread_id),
        "origin": "index",
        "item_id": item.item_id,
        "turn_id": item.turn_id or None,
        "type": item.item_type,
        "role": item.role or None,
        "tool": item.tool or None,
        "preview": preview_text(item.text),
        "snippet": snippet(item.text, words),
        "score": round(-score, 6),
        "created_at": item.created_at.isoformat(),
        "updated_at": (item.completed_at or item.created_at).isoformat(),
    }


def thread_identity(lane: Lane | None, *, thread_id: str) -> dict[str, Any]:
    identity = thread_action_ref(
        lane=lane, thread_id=thread_id, status="unknown", cwd=None
    )
    return {**identity, "name": lane.title if lane is not None else None}


def search_index(
    *, parsed: ParsedQuery, where: ItemFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], bool, int]:
    """Ranked item matches, whether more follow, how many were ranked."""
    ranked, candidates = fts_candidates(
        parsed=parsed, where=where, limit=limit + 1, offset=offset
    )
    more = len(ranked) > limit
    ranked = ranked[:limit]
    items = LaneItem.objects.in_bulk([pk for pk, _ in ranked])
    lanes = {
        lane.thread_id: lane
        for lane in Lane.objects.filter(
            thread_id__in={i.thread_id for i in items.values()}
        )
    }
    words = parsed.highlight_words
    matches = [
        item_match(items[pk], lanes.get(items[pk].thread_id), score=score, words=words)
        for pk, score in ranked
        if pk in items
    ]
    return matches, more, candidates


# -- the app-server's thread/search --------------------------------------------


def remote_match(
    row: dict[str, Any], *, query_words: list[str]
) -> dict[str, Any] | None:
    thread = row.get("thread")
    if not isinstance(thread, dict) or not thread.get("id"):
        return None
    text_snippet = str(row.get("snippet") or "")
    return {
        "ref": None,
        "id": thread["id"],
        "handle": None,
        "managed": False,
        "source": "unmanaged",
        "status": thread_status(thread),
        "name": thread.get("name"),
        "cwd": thread.get("cwd"),
        "origin": "app-server",
        "item_id": None,
        "turn_id": None,
        "type": None,
        "role": None,
        "tool": None,
        "preview": preview_text(thread.get("preview")),
        "snippet": snippet(text_snippet, query_words) if text_snippet else "",
        "score": None,
        "created_at": unix_iso(thread.get("createdAt")),
        "updated_at": unix_iso(thread.get("updatedAt")),
    }


def search_app_server(
    *,
    host: str,
    query: str,
    words: list[str],
    limit: int,
    max_scan: int,
    roots: list[str],
    since: datetime | None,
    until: datetime | None,
    archived: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Unmanaged threads matching `query`, newest first; (matches, scanned)."""
    managed = set(Lane.objects.values_list("thread_id", flat=True))
    matches: list[dict[str, Any]] = []
    scanned = 0
    cursor: str | None = None
    while len(matches) < limit and scanned < max_scan:
        params: dict[str, Any] = {
            "searchTerm": query,
            "limit": min(max(limit * 4, 20), REMOTE_MAX_PAGE, max_scan - scanned),
            "archived": archived,
        }
        if cursor:
            params["cursor"] = cursor
        try:
            page = gateway.rpc(host, "thread/search", params)
        except gateway.RpcFailed as exc:
            raise gateway.classify_rpc_error(exc) from None
        rows = page.get("data") or []
        scanned += len(rows)
        for row in rows:
            match = remote_match(row, query_words=words)
            if match is None or match["id"] in managed:
                continue
            if roots and not path_within(match["cwd"] or "", roots):
                continue
            updated = match["updated_at"]
            if updated and (
                (since and datetime.fromisoformat(updated) < since)
                or (until and datetime.fromisoformat(updated) >= until)
            ):
                continue
            matches.append(match)
            if len(matches) >= limit:
                break
        cursor = page.get("nextCursor")
        if not cursor or not rows:
            break
    return matches, scanned


def search_thread_occurrences(
    *, host: str, thread_id: str, query: str, words: list[str], limit: int
) -> list[dict[str, Any]]:
    """Item-level matches inside one unmanaged thread (thread/searchOccurrences)."""
    try:
        page = gateway.rpc(
            host,
            "thread/searchOccurrences",
            {"threadId": thread_id, "searchTerm": query},
        )
    except gateway.RpcFailed as exc:
        raise gateway.classify_rpc_error(exc) from None
    out = []
    for row in (page.get("data") or [])[:limit]:
        out.append(
            {
                **thread_identity(None, thread_id=thread_id),
                "origin": "app-server",
                "item_id": row.get("itemId"),
                "turn_id": row.get("turnId"),
                "type": None,
                "role": None,
                "tool": None,
                "preview": "",
                "snippet": snippet(str(row.get("snippet") or ""), words),
                "score": None,
                "created_at": None,
                "updated_at": None,
            }
        )
    return out


# -- the op --------------------------------------------------------------------


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
    from lanes.selectors import find_lane

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
