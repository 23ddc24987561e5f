"""Lane pages outside /api/v1: the staff-only live page."""

from __future__ import annotations

from django.urls import path

from lanes import views

app_name = "lanes"

urlpatterns = [
    path("lanes/<str:selector>/live", views.live, name="live"),
    path("lanes/<str:selector>/live/send", views.live_send, name="live-send"),
]
