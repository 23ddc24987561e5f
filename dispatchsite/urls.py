from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path

from dispatchsite.core.errors import NotFoundError
from dispatchsite.surfaces.api import api


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def api_not_found(request: HttpRequest, rest: str) -> HttpResponse:
    # Unknown paths under the API answer in the API's error shape, not HTML.
    error = NotFoundError(
        f"no API route {request.method} /api/v1/{rest}",
        hint="see /api/v1/openapi.json",
    )
    return JsonResponse(error.as_dict(), status=error.http_status)


urlpatterns = [
    path("healthz", healthz),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", api_not_found),
    path("", include("lanes.urls")),
]
