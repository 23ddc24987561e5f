"""Lane selectors: ref, full thread id, @handle, title; writes never fuzzy-match.

Resolution order: ref -> full thread id -> @handle -> exact title -> (reads
only) case-insensitive title -> title substring. Anything that matches more
than one lane is a validation error that lists the candidates, so a
selector never silently picks one of several lanes.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model

from dispatchsite.core.errors import NotFoundError, ValidationError
from lanes.models import Lane

MAX_CANDIDATES = 10
NOT_FOUND_HINT = (
    "see `dispatch list --include-archived`; attach an existing thread with "
    "`dispatch attach <thread-id>`"
)


def candidates_text(lanes: list[Lane]) -> str:
    return ", ".join(f"{lane.ref} (@{lane.title})" for lane in lanes[:MAX_CANDIDATES])


def ambiguous(selector: str, lanes: list[Lane]) -> ValidationError:
    return ValidationError(
        f"lane selector {selector!r} is ambiguous: it matches {candidates_text(lanes)}",
        hint="use a ref, the full thread id or the exact @handle",
        data={
            "candidates": [
                {"ref": lane.ref, "handle": lane.handle, "id": lane.thread_id}
                for lane in lanes[:MAX_CANDIDATES]
            ]
        },
    )


def one_or_ambiguous(selector: str, matches: list[Lane]) -> Lane | None:
    if len(matches) > 1:
        raise ambiguous(selector, matches)
    return matches[0] if matches else None


def select_sql(model: type[Model], where: str) -> str:
    """The ORM's SELECT of `model`'s rows, as fixed text, for lookups that run
    on every request: building that query through the ORM costs two to three
    times its execution. Raw querysets still convert every field."""
    columns = ", ".join(
        connection.ops.quote_name(field.column)
        for field in model._meta.concrete_fields
        if field.column  # always set on a concrete field; narrows the type
    )
    table = connection.ops.quote_name(model._meta.db_table)
    return f"SELECT {columns} FROM {table} WHERE {where}"


LANE_BY_REF_OR_THREAD_ID = select_sql(Lane, '"ref" = %s OR "thread_id" = %s')


def lane_by_ref_or_thread_id(selector: str) -> Lane | None:
    """The lane whose ref, else whose thread id, is `selector`.

    One query for both (each column is unique and indexed, so at most two
    rows): every REST call on a lane resolves it here first.
    """
    matches = list(Lane.objects.raw(LANE_BY_REF_OR_THREAD_ID, [selector, selector]))
    for lane in matches:
        if lane.ref == selector:
            return lane
    return matches[0] if matches else None


def find_lane(selector: str, *, fuzzy: bool = False) -> Lane | None:
    """The lane `selector` names, None when nothing matches."""
    selector = selector.strip()
    if not selector:
        raise ValidationError(
            "empty lane selector", hint="pass a ref, thread id or @handle"
        )
    lane = lane_by_ref_or_thread_id(selector)
    if lane is not None:
        return lane
    if selector.startswith("@"):
        # A handle is exact: an unknown @name is never a title search.
        return Lane.objects.filter(title=selector[1:]).first()
    lane = Lane.objects.filter(title=selector).first()
    if lane is not None or not fuzzy:
        return lane
    limit = MAX_CANDIDATES + 1
    exact = list(Lane.objects.filter(title__iexact=selector)[:limit])
    if exact:
        return one_or_ambiguous(selector, exact)
    return one_or_ambiguous(
        selector, list(Lane.objects.filter(title__icontains=selector)[:limit])
    )


def resolve_lane(selector: str, *, for_write: bool = False) -> Lane:
    """A managed lane or NotFoundError; writes resolve exactly, never fuzzily."""
    lane = find_lane(selector, fuzzy=not for_write)
    if lane is None:
        raise NotFoundError(
            f"no managed lane matches {selector!r}", hint=NOT_FOUND_HINT
        )
    return lane


def resolve_lane_or_thread(selector: str) -> tuple[Lane | None, str]:
    """A managed lane, or a raw thread id for verbs that accept one.

    Exact resolution only: these verbs write, and a raw id must never be
    confused with a lane whose title happens to contain it.
    """
    lane = find_lane(selector)
    if lane is not None:
        return lane, lane.thread_id
    selector = selector.strip()
    if selector.startswith("@"):
        raise NotFoundError(
            f"no managed lane has handle {selector}", hint=NOT_FOUND_HINT
        )
    return None, selector
