"""ASGI entry: HTTP goes to Django (admin, /api/v1), websockets to /ws/."""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from dispatchsite.surfaces.http_pool import PooledWsgi  # noqa: E402
from dispatchsite.wsclose import install as install_close_reasons  # noqa: E402
from lanes.realtime.routing import websocket_urlpatterns  # noqa: E402

install_close_reasons()

CLOSE_NOT_FOUND = 4404


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Any other websocket path: URLRouter would raise (an HTTP 500 on the
    handshake). Accept, then close with 4404: a close before accept becomes
    an HTTP 403 and the client would never see the code."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND, reason="no such websocket path")


class HttpRouter:
    """/api/ to the pooled WSGI handler (see http_pool), the rest to Django's
    ASGI handler."""

    def __init__(self) -> None:
        self.api = PooledWsgi(WSGIHandler())
        self.pages = ASGIStaticFilesHandler(django_asgi_app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.api if scope["path"].startswith("/api/") else self.pages
        await app(scope, receive, send)


# daphne serves no static files itself; dispatch is a local, single-host
# web tier, so Django serves the admin's and the live page's assets.
# The websocket stack carries the session user so the admin live page can
# authenticate with its login; API clients send a bearer token instead.
application = ProtocolTypeRouter(
    {
        "http": HttpRouter(),
        "websocket": AuthMiddlewareStack(
            URLRouter(
                [*websocket_urlpatterns, re_path(r"", UnknownPathConsumer.as_asgi())]
            )
        ),
    }
)
