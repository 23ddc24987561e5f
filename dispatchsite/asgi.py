"""ASGI entry: HTTP goes to Django (admin, /api/v1), websockets to /ws/."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from lanes.realtime.routing import websocket_urlpatterns  # noqa: E402

# daphne serves no static files itself; dispatch is a local, single-host
# web tier, so Django serves the admin's and the live page's assets.
# The websocket stack carries the session user so the admin live page can
# authenticate with its login; API clients send a bearer token instead.
application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
