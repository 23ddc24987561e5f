"""Bearer-token authentication for /api/v1 and the websockets."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from dispatchsite.core.errors import UnauthorizedError
from lanes.models import ApiToken
from lanes.tokens import TokenScope, token_user


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>` against the hashed ApiToken table."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return token_user(token)


UNAUTHORIZED_HINT = (
    "send `Authorization: Bearer <token>`; create one with `dispatch token create NAME`"
)


def unauthorized() -> UnauthorizedError:
    return UnauthorizedError("missing or invalid API token", hint=UNAUTHORIZED_HINT)


def request_token(request: HttpRequest) -> ApiToken:
    """The token BearerToken authenticated; refuses a request that has none."""
    token = getattr(request, "auth", None)
    if not isinstance(token, ApiToken):
        raise unauthorized()
    return token


def request_scope(request: HttpRequest) -> TokenScope:
    return TokenScope.of(request_token(request))
