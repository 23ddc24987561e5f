"""The one NinjaAPI: /api/v1, generated from the op registry.

Every route needs `Authorization: Bearer <token>` except /health (and the
OpenAPI document and docs page, which only describe the API). All errors,
including ninja's own request validation and auth failures, share one
body shape: `{"error": {"code", "message", "exit_status", "hint"?, "data"?}}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.surfaces.auth import BearerToken, unauthorized
from dispatchsite.surfaces.rest import build_router, json_response

API_VERSION = "1"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dispatch")
    except PackageNotFoundError:
        return "0+unknown"


api = NinjaAPI(
    title="dispatch",
    version=API_VERSION,
    description=(
        "Local-first control plane for Codex threads (lanes). Every route is an "
        "op of the dispatch registry; `dispatch schema <command>` prints the same "
        "input and output schemas."
    ),
    urls_namespace="api-v1",
    auth=BearerToken(),
    openapi_url="/openapi.json",
    docs_url="/docs",
)


def error_response(error: DispatchError) -> HttpResponse:
    return json_response(error.as_dict(), status=error.http_status)


def too_large_response() -> HttpResponse:
    """413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE (Django's own is HTML)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    error = ValidationError(
        f"the request body is larger than the limit of {limit} bytes",
        hint="send a smaller body",
        data={"limit_bytes": limit},
    )
    return json_response(error.as_dict(), status=413)


def api_method_not_allowed(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Middleware: ninja answers a method a route lacks with a text 405; under
    /api/ it becomes the JSON error body, keeping the Allow header."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if not (
            isinstance(response, HttpResponseNotAllowed)
            and request.path.startswith("/api/")
        ):
            return response
        allowed = response["Allow"]
        error = ValidationError(
            f"{request.method} is not allowed on {request.path}",
            hint=f"allowed methods: {allowed}",
        )
        answer = json_response(error.as_dict(), status=405)
        answer["Allow"] = allowed
        return answer

    return middleware


def validation_text(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        # ninja prefixes locations with the source and the view parameter.
        loc = [
            str(p)
            for p in error.get("loc", ())
            if p not in {"path_", "query_", "body_"}
        ]
        where = ".".join(
            loc[1:] if loc and loc[0] in {"path", "query", "body"} else loc
        )
        parts.append(f"{where or 'input'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


@api.exception_handler(DispatchError)
def on_dispatch_error(request: HttpRequest, exc: DispatchError) -> HttpResponse:
    return error_response(exc)


@api.exception_handler(NinjaValidationError)
def on_request_invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    return error_response(
        ValidationError(
            f"invalid request: {validation_text(exc.errors)}",
            hint="see the OpenAPI document at /api/v1/openapi.json",
        )
    )


@api.exception_handler(RequestDataTooBig)
def on_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return too_large_response()


@api.exception_handler(AuthenticationError)
def on_unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(unauthorized())


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400:
        return error_response(ValidationError(str(exc)))
    error = DispatchError(str(exc))
    return json_response(
        {"error": {**error.as_dict()["error"], "code": f"http_{exc.status_code}"}},
        status=exc.status_code,
    )


api.add_router("", build_router(package_version()))
