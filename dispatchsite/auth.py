"""Bearer-token authentication for /api/v1 and the websockets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from dispatchsite.errors import DispatchError

if TYPE_CHECKING:
    from lanes.models import ApiToken


class UnauthorizedError(DispatchError):
    """No token, or one that is unknown or revoked."""

    code = "unauthorized"
    exit_status = 7
    http_status = 401


def token_user(raw: str | None) -> ApiToken | None:
    """The live ApiToken for a raw bearer value, or None."""
    if not raw:
        return None
    from lanes.tokens import api_token_authenticate

    return api_token_authenticate(raw.strip())


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer value from raw ASGI headers (websocket scopes)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
    return None


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>` against the hashed ApiToken table."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return token_user(token)


UNAUTHORIZED_HINT = (
    "send `Authorization: Bearer <token>`; create one with `dispatch token create NAME`"
)


def unauthorized() -> UnauthorizedError:
    return UnauthorizedError("missing or invalid API token", hint=UNAUTHORIZED_HINT)
