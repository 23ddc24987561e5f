"""Lane pages outside /api/v1: the dashboard and the live page (staff only)."""

from __future__ import annotations

from django.urls import path

from lanes import dashboard, views

app_name = "lanes"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("dashboard/lanes.json", dashboard.dashboard_rows, name="dashboard-rows"),
    path("lanes/<str:selector>/live", views.live, name="live"),
    path("lanes/<str:selector>/live/send", views.live_send, name="live-send"),
    path("lanes/<str:selector>/live/stop", views.live_stop, name="live-stop"),
    path("lanes/<str:selector>/live/respond", views.live_respond, name="live-respond"),
]
