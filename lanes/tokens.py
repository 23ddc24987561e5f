"""API tokens: the bearer credentials of the REST API, MCP and websockets.

Only a sha256 of each token is stored. A token is `dsp_` + 8 lookup chars +
a secret; the first 12 characters are its stored (unique) prefix, so a
request costs one indexed query and one constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatchsite.core.errors import NotFoundError, ValidationError
from lanes.models import ApiToken

TOKEN_PREFIX = "dsp_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# last_used_at is a hint for humans; writing it on every request would take
# SQLite's write lock on the hot path, so it is refreshed at most this often.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_generate() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def api_token_create(*, name: str) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    name = name.strip()
    if not name:
        raise ValidationError("token name must not be empty", hint="pass a name")
    existing = ApiToken.objects.filter(name=name).first()
    if existing is not None and existing.revoked_at is None:
        raise ValidationError(
            f"a token named {name!r} already exists",
            hint=f"revoke it first: `dispatch token revoke {name} --yes`",
        )
    if existing is not None:
        existing.delete()  # a revoked token frees its name
    for _attempt in range(5):
        raw = token_generate()
        token = ApiToken(
            name=name, prefix=raw[:PREFIX_LENGTH], token_hash=token_hash(raw)
        )
        token.full_clean(validate_unique=False)
        try:
            with transaction.atomic():
                token.save()
        except IntegrityError:
            if ApiToken.objects.filter(name=name).exists():
                raise ValidationError(
                    f"a token named {name!r} already exists"
                ) from None
            continue  # a prefix collision: draw again
        return token, raw
    raise ValidationError("could not allocate a unique token prefix")


def api_token_revoke(*, name: str) -> ApiToken:
    token = ApiToken.objects.filter(name=name).first()
    if token is None:
        raise NotFoundError(
            f"no API token named {name!r}", hint="see `dispatch token list`"
        )
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The live token matching `raw`, or None; marks it used (coarsely)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) <= PREFIX_LENGTH:
        return None
    token = ApiToken.objects.filter(
        prefix=raw[:PREFIX_LENGTH], revoked_at__isnull=True
    ).first()
    if token is None or not hmac.compare_digest(token.token_hash, token_hash(raw)):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_as_dict(token: ApiToken) -> dict[str, object]:
    return {
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "active": token.revoked_at is None,
    }


def token_user(raw: str | None) -> ApiToken | None:
    """The live ApiToken for a raw bearer value, or None."""
    if not raw:
        return None
    return api_token_authenticate(raw.strip())


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer value from raw ASGI headers (websocket scopes)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
    return None
