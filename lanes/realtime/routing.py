"""Websocket routes (see lanes.realtime.consumers)."""

from __future__ import annotations

from typing import Any

from django.urls import re_path

from lanes.realtime.consumers import LaneEventsConsumer, LanesEventsConsumer

websocket_urlpatterns: list[Any] = [
    re_path(r"^ws/lanes/(?P<selector>[^/]+)/events/?$", LaneEventsConsumer.as_asgi()),
    re_path(r"^ws/events/?$", LanesEventsConsumer.as_asgi()),
]
