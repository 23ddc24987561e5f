"""Lane selectors: ref, full thread id, @handle, title; writes never fuzzy-match."""

from __future__ import annotations

from dispatchsite.errors import NotFoundError, ValidationError
from lanes.models import Lane


def candidates_text(lanes: list[Lane]) -> str:
    return ", ".join(f"{lane.ref} (@{lane.title})" for lane in lanes[:10])


def find_lane(selector: str, *, fuzzy: bool = False) -> Lane | None:
    selector = selector.strip()
    if not selector:
        raise ValidationError("empty lane selector", hint="pass a ref, thread id or @handle")
    lane = Lane.objects.filter(ref=selector).first() or Lane.objects.filter(
        thread_id=selector
    ).first()
    if lane is not None:
        return lane
    if selector.startswith("@"):
        return Lane.objects.filter(title=selector[1:]).first()
    lane = Lane.objects.filter(title=selector).first()
    if lane is not None or not fuzzy:
        return lane
    matches = list(Lane.objects.filter(title__icontains=selector)[:11])
    if len(matches) > 1:
        raise ValidationError(
            f"lane selector {selector!r} is ambiguous: {candidates_text(matches)}",
            hint="use a ref or the full thread id",
            data={"candidates": [m.ref for m in matches]},
        )
    return matches[0] if matches else None


def resolve_lane(selector: str, *, for_write: bool = False) -> Lane:
    lane = find_lane(selector, fuzzy=not for_write)
    if lane is None:
        raise NotFoundError(
            f"no managed lane matches {selector!r}",
            hint="see `dispatch list`; attach an existing thread with `dispatch attach <thread-id>`",
        )
    return lane
