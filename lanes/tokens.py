"""API tokens: the bearer credentials of the REST API, MCP and websockets.

Only a sha256 of each token is stored. A token is `dsp_` + 8 lookup chars +
a secret; the first 12 characters are its stored (unique) prefix, so a
request costs one indexed query and one constant-time comparison.

A token may be scoped: read ops only (`read_only`), only some lanes
(`lane_ids`, thread ids resolved when it is created), until `expires_at`.
TokenScope is the one place those scopes are checked; REST (and so MCP,
which calls REST) and the websockets all ask it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dispatchsite.core.errors import AuthorityError, NotFoundError, ValidationError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import load_ops, parse_input
from lanes.models import ApiToken, Lane
from lanes.selectors import find_lane, select_sql

TOKEN_PREFIX = "dsp_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
TOKEN_BY_PREFIX = select_sql(ApiToken, '"prefix" = %s')
# last_used_at is a hint for humans; writing it on every request would take
# SQLite's write lock on the hot path, so it is refreshed at most this often.
LAST_USED_RESOLUTION = timedelta(seconds=60)
DURATION = re.compile(r"(\d+)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EXPIRES_FORMS = "a duration (30m, 12h, 7d, 2w) or an ISO-8601 time"

# The local CLI's own token (run/cli-token, made by dispatchsite.surfaces.
# daemon): REST runs its calls as the in-process CLI would (surface "cli",
# the daemon's OS user, the only one who can read that 0600 file), so no
# other token may take its name.
CLI_TOKEN_NAME = "cli-local"

# Input fields through which an op names the lane it acts on.
LANE_FIELDS = ("lane", "old", "target")
# Reads that name no lane, answered in full to a lane-scoped token because
# they say nothing about any lane. Every other lane-free op is refused to it
# (new ops included, until they are listed here or in NARROWED_READS).
LANE_FREE_READS = frozenset({"models"})
# Lane-free reads a lane-scoped token sees narrowed to its lanes:
# op id -> the output list whose rows carry the lane's thread id as "id".
NARROWED_READS = {"roster": "lanes"}


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_generate() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def live_tokens() -> Any:
    """Tokens neither revoked nor expired (token_is_live, as a queryset)."""
    return ApiToken.objects.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )


def token_is_live(token: ApiToken, now: datetime) -> bool:
    """live_tokens() for one loaded token."""
    return token.revoked_at is None and (
        token.expires_at is None or token.expires_at > now
    )


def token_expiry(text: str, *, now: datetime | None = None) -> datetime:
    """`--expires`: a duration from now or an ISO-8601 time, in the future."""
    now = now or timezone.now()
    value = text.strip()
    match = DURATION.fullmatch(value)
    if match:
        seconds = int(match[1]) * UNITS[match[2]]
        if seconds <= 0:
            raise ValidationError(
                f"--expires {text!r} is not in the future", hint=f"pass {EXPIRES_FORMS}"
            )
        try:
            return now + timedelta(seconds=seconds)
        except OverflowError:
            raise ValidationError(
                f"--expires {text!r} is too far away", hint=f"pass {EXPIRES_FORMS}"
            ) from None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"--expires {text!r} is neither a duration nor an ISO-8601 time",
            hint=f"pass {EXPIRES_FORMS}; a time without an offset is UTC",
        ) from None
    if timezone.is_naive(when):
        when = when.replace(tzinfo=UTC)
    if when <= now:
        raise ValidationError(
            f"--expires {text!r} is in the past", hint=f"pass {EXPIRES_FORMS}"
        )
    return when


def scope_lanes(selectors: Iterable[str]) -> list[str] | None:
    """Thread ids of the `--lane` selectors (exact), None when none were given."""
    ids: list[str] = []
    for selector in selectors:
        lane = find_lane(selector) if selector.strip() else None
        if lane is None:
            raise ValidationError(
                f"--lane {selector!r}: no managed lane matches",
                hint="name a lane by ref, thread id or @handle; see `dispatch list`",
            )
        if lane.thread_id not in ids:
            ids.append(lane.thread_id)
    return ids or None


def api_token_create(
    *,
    name: str,
    read_only: bool = False,
    lanes: Iterable[str] = (),
    expires: str | None = None,
    cli: bool = False,
) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored.

    `cli` makes the local CLI's token (full scope, never expiring), the only
    way to a token named CLI_TOKEN_NAME."""
    name = CLI_TOKEN_NAME if cli else name.strip()
    if not name:
        raise ValidationError("token name must not be empty", hint="pass a name")
    if name == CLI_TOKEN_NAME and not cli:
        raise ValidationError(
            f"the token name {name!r} is reserved for the local CLI",
            hint="pick another name",
        )
    if cli and (read_only or lanes or expires is not None):
        raise ValidationError("the local CLI's token has full scope")
    lane_ids = scope_lanes(lanes)
    expires_at = token_expiry(expires) if expires is not None else None
    existing = ApiToken.objects.filter(name=name).first()
    if existing is not None and live_tokens().filter(pk=existing.pk).exists():
        raise ValidationError(
            f"a token named {name!r} already exists",
            hint=f"revoke it first: `dispatch token revoke {name} --yes`",
        )
    if existing is not None:
        existing.delete()  # a revoked or expired token frees its name
    for _attempt in range(5):
        raw = token_generate()
        token = ApiToken(
            name=name,
            prefix=raw[:PREFIX_LENGTH],
            token_hash=token_hash(raw),
            read_only=read_only,
            lane_ids=lane_ids,
            expires_at=expires_at,
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
    """The live token matching `raw`, or None; marks it used (coarsely).

    Expired tokens are refused exactly like revoked ones.
    """
    if not raw.startswith(TOKEN_PREFIX) or len(raw) <= PREFIX_LENGTH:
        return None
    # Every request runs this: one fixed indexed lookup of the unique prefix,
    # and liveness checked on the row just read, so a revocation made by
    # another process still counts from the next request.
    found = list(ApiToken.objects.raw(TOKEN_BY_PREFIX, [raw[:PREFIX_LENGTH]]))
    if not found:
        return None
    token = found[0]
    now = timezone.now()
    if not token_is_live(token, now):
        return None
    if not hmac.compare_digest(token.token_hash, token_hash(raw)):
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def api_token_as_dict(token: ApiToken) -> dict[str, object]:
    expired = token.expires_at is not None and token.expires_at <= timezone.now()
    lanes = None
    if token.lane_ids is not None:
        known = {
            lane.thread_id: lane
            for lane in Lane.objects.filter(thread_id__in=token.lane_ids)
        }
        lanes = [
            {
                "id": thread_id,
                "ref": known[thread_id].ref if thread_id in known else None,
                "handle": known[thread_id].handle if thread_id in known else None,
            }
            for thread_id in token.lane_ids
        ]
    return {
        "name": token.name,
        "prefix": token.prefix,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
        "read_only": token.read_only,
        "lanes": lanes,
        "expires_at": iso(token.expires_at),
        "expired": expired,
        "active": token.revoked_at is None and not expired,
    }


def token_is_cli(token: ApiToken) -> bool:
    """Whether REST runs this token's calls as the local CLI's."""
    return (
        token.name == CLI_TOKEN_NAME
        and not token.read_only
        and token.lane_ids is None
        and token.expires_at is None
    )


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


# -- scopes ---------------------------------------------------------------------

SCOPE_HINT = "see its scopes with `dispatch token list`"


@dataclass(frozen=True)
class TokenScope:
    """What one token may do: every check of a token's scopes is here."""

    name: str
    read_only: bool = False
    # Thread ids of the lanes the token may touch; None: every lane.
    lane_ids: frozenset[str] | None = None

    @classmethod
    def of(cls, token: ApiToken) -> TokenScope:
        lanes = frozenset(token.lane_ids) if token.lane_ids is not None else None
        return cls(name=token.name, read_only=token.read_only, lane_ids=lanes)

    def allows_lane(self, thread_id: str) -> bool:
        return self.lane_ids is None or thread_id in self.lane_ids

    def authorize(self, op_id: str, params: dict[str, Any], origin: Origin) -> None:
        """AuthorityError unless this token may run `op_id` with `params`.

        Refused writes are audited, like every refused write.
        """
        if not self.read_only and self.lane_ids is None:
            return
        op = load_ops().get(op_id)
        if op is None:
            return  # execute reports the unknown op
        if self.read_only and op.intent != "read":
            self.refuse(
                op_id,
                op.intent,
                origin,
                f"token {self.name!r} is read-only: `{op.cli}` is a {op.intent} op",
                hint=f"use a token created without --read-only; {SCOPE_HINT}",
            )
        if self.lane_ids is None:
            return
        # The parsed input: exactly the values the handler will resolve.
        parsed = parse_input(op, params)
        selectors = [
            value
            for field in LANE_FIELDS
            if isinstance(value := getattr(parsed, field, None), str) and value.strip()
        ]
        if not selectors:
            if op.intent == "read" and (
                op.id in LANE_FREE_READS or op.id in NARROWED_READS
            ):
                return
            self.refuse(
                op_id,
                op.intent,
                origin,
                f"token {self.name!r} is limited to some lanes, and `{op.cli}` "
                "does not name one of them",
                hint="name one of its lanes, or use a token without --lane; "
                + SCOPE_HINT,
            )
        for selector in selectors:
            # Exact resolution, and one answer for unknown and foreign lanes:
            # a scoped token learns nothing about lanes outside its scope.
            lane = find_lane(selector)
            if lane is None or lane.thread_id not in self.lane_ids:
                self.refuse(
                    op_id,
                    op.intent,
                    origin,
                    f"token {self.name!r} may not act on lane {selector!r}: it is "
                    "not one of the token's lanes",
                    hint="name one of its lanes exactly (ref, thread id or "
                    f"@handle); {SCOPE_HINT}",
                    lane=selector,
                )

    def refuse(
        self,
        op_id: str,
        intent: str,
        origin: Origin,
        message: str,
        *,
        hint: str,
        lane: str = "",
    ) -> NoReturn:
        if intent != "read":
            from lanes.services.audit import audit_record

            audit_record(
                op=op_id, lane=lane, outcome="authority", detail=message, origin=origin
            )
        raise AuthorityError(message, hint=hint)

    def narrow(self, op_id: str, output: dict[str, Any]) -> dict[str, Any]:
        """A lane-free read's answer without the lanes outside the scope."""
        key = NARROWED_READS.get(op_id)
        if self.lane_ids is None or key is None:
            return output
        rows = output.get(key) or []
        return {**output, key: [row for row in rows if self.allows_lane(row["id"])]}
