"""Registering lanes: refs, names and titles."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from dispatchsite.core.errors import DispatchError, ValidationError
from lanes.models import Lane, ref_payload

REF_MIXER = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TITLE_MAX = 200


def lane_ref_allocate(*, thread_id: str) -> str:
    payload = ref_payload(thread_id)
    taken = set(
        Lane.objects.filter(ref__startswith=payload).values_list("ref", flat=True)
    )
    for mixer in REF_MIXER:
        if payload + mixer not in taken:
            return payload + mixer
    raise DispatchError(f"no free ref for thread {thread_id}")


def lane_title_free(*, title: str, exclude: Lane | None = None) -> None:
    clash = Lane.objects.filter(title=title)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    other = clash.first()
    if other is not None:
        raise ValidationError(
            f"a lane named {title!r} already exists ({other.ref})",
            hint="choose another name, or rename the existing lane",
        )


def lane_title_unique(*, base: str) -> str:
    """`base`, or `base-2`, `base-3`... whichever no lane uses yet."""
    base = base[: TITLE_MAX - 4]
    if not Lane.objects.filter(title=base).exists():
        return base
    taken = set(
        Lane.objects.filter(title__startswith=f"{base}-").values_list(
            "title", flat=True
        )
    )
    for n in range(2, 1000):
        if f"{base}-{n}" not in taken:
            return f"{base}-{n}"
    raise ValidationError(f"too many lanes named {base!r}", hint="rename some lanes")


def lane_register(
    *,
    thread_id: str,
    title: str,
    source: str,
    cwd: str,
    host: str,
    runtime_settings: dict[str, Any] | None = None,
    model: str = "",
    model_provider: str = "",
    status: str = Lane.Status.IDLE,
) -> Lane:
    for _attempt in range(3):
        lane = Lane(
            thread_id=thread_id,
            ref=lane_ref_allocate(thread_id=thread_id),
            title=title,
            source=source,
            cwd=cwd,
            host=host,
            status=status,
            runtime_settings=runtime_settings or {},
            model=model,
            model_provider=model_provider,
        )
        lane.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                lane.save()
            return lane
        except IntegrityError:
            if Lane.objects.filter(thread_id=thread_id).exists():
                return Lane.objects.get(thread_id=thread_id)
            lane_title_free(title=title)
    raise DispatchError(f"could not register thread {thread_id}")
