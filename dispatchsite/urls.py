from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt

from dispatchsite.core.errors import (
    AuthorityError,
    DispatchError,
    NotFoundError,
    ValidationError,
)
from dispatchsite.surfaces.api import api, error_response, too_large_response


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def in_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


# The API is token-authenticated, so its unknown paths need no CSRF check:
# every method gets the JSON 404, not Django's CSRF page.
@csrf_exempt
def api_not_found(request: HttpRequest, rest: str) -> HttpResponse:
    # Unknown paths under the API answer in the API's error shape, not HTML.
    return error_response(
        NotFoundError(
            f"no API route {request.method} {request.path}",
            hint="see /api/v1/openapi.json",
        )
    )


# Django's own error pages are HTML; under /api/ they answer the API's body.


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not in_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return too_large_response()
    if isinstance(exception, DisallowedHost):
        host = request.META.get("HTTP_HOST", "")
        return error_response(
            ValidationError(
                f"this server does not answer to the host {host!r}",
                hint="connect to 127.0.0.1 or localhost, or add the name to "
                "DISPATCH_ALLOWED_HOSTS",
            )
        )
    return error_response(ValidationError(f"bad request: {exception}"))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not in_api(request):
        return defaults.page_not_found(request, exception)
    return api_not_found(request, request.path)


def server_error(request: HttpRequest) -> HttpResponse:
    if not in_api(request):
        return defaults.server_error(request)
    return error_response(
        DispatchError("internal server error", hint="see the web server's log")
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if not in_api(request):
        return csrf.csrf_failure(request, reason)
    return error_response(
        AuthorityError(
            f"CSRF verification failed: {reason}",
            hint="API clients send `Authorization: Bearer <token>`, no cookies",
        )
    )


handler400 = bad_request
handler404 = page_not_found
handler500 = server_error

urlpatterns = [
    path("healthz", healthz),
    path("admin/", admin.site.urls),
    path("api/v1/hooks/", include("triggers.urls")),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", api_not_found),
    path("", include("lanes.urls")),
]
