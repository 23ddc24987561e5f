"""`POST /api/v1/hooks/<trigger_id>`: a signed request fires a webhook trigger.

No API token: the caller proves it holds the trigger's secret with
`X-Dispatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
and `X-Dispatch-Timestamp` within TIMESTAMP_WINDOW_S of now. A repeated
`Idempotency-Key` is refused (409) by the ledger's unique slot. A refused
request changes nothing; a good one answers 202 with the firing id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from dispatchsite.core.errors import (
    DispatchError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
)
from triggers import queue
from triggers.models import Trigger, TriggerFiring
from triggers.services import firing_record

BODY_CAP_BYTES = 1024 * 1024
TIMESTAMP_WINDOW_S = 300
SIGNATURE_PREFIX = "sha256="


class ConflictError(DispatchError):
    """The request is well signed but cannot fire: replayed, or paused."""

    code = "conflict"
    exit_status = 5
    http_status = 409


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return SIGNATURE_PREFIX + digest


def error(exc: DispatchError, status: int | None = None) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=status or exc.http_status)


def verify(trigger: Trigger, request: HttpRequest, body: bytes, now: float) -> None:
    timestamp = request.headers.get("X-Dispatch-Timestamp", "")
    given = request.headers.get("X-Dispatch-Signature", "")
    hint = (
        'sign "<X-Dispatch-Timestamp>.<raw body>" with the trigger secret: '
        "X-Dispatch-Signature: sha256=<hex HMAC-SHA256>"
    )
    if not timestamp.isdigit():
        raise UnauthorizedError("missing or malformed X-Dispatch-Timestamp", hint=hint)
    if abs(now - int(timestamp)) > TIMESTAMP_WINDOW_S:
        raise UnauthorizedError(
            f"stale X-Dispatch-Timestamp (more than {TIMESTAMP_WINDOW_S} s from now)",
            hint="send the current unix time and sign it",
        )
    if not hmac.compare_digest(signature(trigger.secret, timestamp, body), given):
        raise UnauthorizedError("bad or missing X-Dispatch-Signature", hint=hint)


def idempotency_slot(request: HttpRequest) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return "hook:" + uuid.uuid4().hex
    return "hook-key:" + hashlib.sha256(key.encode()).hexdigest()[:48]


def payload_of(body: bytes) -> Any:
    """The JSON body for {{ payload.* }}, or None when it is not JSON."""
    try:
        return json.loads(body) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


@csrf_exempt
@require_POST
def hook(request: HttpRequest, trigger_id: str) -> JsonResponse:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > BODY_CAP_BYTES:
        return error(
            ValidationError(
                f"the body is over the {BODY_CAP_BYTES}-byte cap", hint="send less"
            ),
            status=413,
        )
    trigger = Trigger.objects.filter(pk=trigger_id, kind=Trigger.Kind.WEBHOOK).first()
    if trigger is None:
        return error(NotFoundError(f"no webhook trigger {trigger_id!r}"))
    body = request.read(BODY_CAP_BYTES + 1)
    if len(body) > BODY_CAP_BYTES:
        return error(
            ValidationError(f"the body is over the {BODY_CAP_BYTES}-byte cap"),
            status=413,
        )
    try:
        verify(trigger, request, body, time.time())
    except UnauthorizedError as exc:
        return error(exc, status=401)
    if not trigger.enabled:
        return error(
            ConflictError(
                f"trigger {trigger.id} is paused: {trigger.paused_reason}",
                hint=f"resume it: `dispatch trigger resume {trigger.id}`",
            )
        )
    firing = firing_record(
        trigger=trigger,
        slot_key=idempotency_slot(request),
        slot_at=timezone.now(),
        reason=TriggerFiring.Reason.WEBHOOK,
        context={"payload": payload_of(body)},
    )
    if firing is None:
        return error(
            ConflictError(
                "this Idempotency-Key was already used for this trigger",
                hint="send a new key for a new event",
            )
        )
    firing_id = firing.pk
    transaction.on_commit(lambda: queue.enqueue_fire([firing_id]))
    return JsonResponse(
        {"accepted": True, "trigger_id": trigger.id, "firing_id": firing_id},
        status=202,
    )
