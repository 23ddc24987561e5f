"""The SQL behind the local index: SQLite FTS5, Postgres full text, and a
substring fallback for any other database."""

from __future__ import annotations

from typing import Any

from django.db import connection

from lanes.history.search.filters import ItemFilter
from lanes.history.search.query import ParsedQuery, Term
from lanes.models.index import LaneItem

# Matches ranked per query: the newest this many (after filters). A term in
# more items than this is ranked among its newest matches; more words narrow.
RANK_WINDOW = 5000


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
