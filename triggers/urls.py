"""Mounted at /api/v1/hooks/ by dispatchsite/urls.py: signed, no API token."""

from __future__ import annotations

from django.urls import path

from triggers.webhooks import hook

urlpatterns = [path("<str:trigger_id>", hook)]
