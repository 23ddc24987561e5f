"""The dashboard at `/`: every lane on one staff-only page, kept live.

The page renders the rows once, then lanes/static/lanes/dashboard.js opens
one `/ws/events` socket for every lane (`after=latest`: only what happens
from now on) and refetches `rows` whenever a frame arrives. The rows are
read from the lane table, which the worker updates in the same transaction
that journals a frame, so a refetch after a frame always sees its effect.
The page also refetches on a timer, to pick up lanes created since it
opened (the socket is reopened when the set of lanes changes).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from lanes.appserver.protocol import TURN_STARTED
from lanes.models import Lane, LaneEvent, QueuedMessage

# Seconds between refetches that find lanes created after the page opened.
REFRESH_SECONDS = 10
FILTERS = ("status", "host", "source")


def turn_counts(thread_ids: list[str]) -> dict[str, tuple[int, Any]]:
    """thread id -> (turns started, when the latest one started)."""
    rows = (
        LaneEvent.objects.filter(thread_id__in=thread_ids, method=TURN_STARTED)
        .values("thread_id")
        .annotate(turns=Count("id"), last=Max("received_at"))
    )
    return {row["thread_id"]: (row["turns"], row["last"]) for row in rows}


def queue_depths(lanes: list[Lane]) -> dict[int, int]:
    rows = (
        QueuedMessage.objects.filter(lane__in=lanes)
        .values("lane_id")
        .annotate(
            waiting=Count(
                "id",
                filter=Q(
                    status__in=(
                        QueuedMessage.Status.PENDING,
                        QueuedMessage.Status.SENDING,
                    )
                ),
            )
        )
    )
    return {row["lane_id"]: row["waiting"] for row in rows}


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def lane_rows() -> list[dict[str, Any]]:
    """One JSON-ready row per lane, archived ones included (the page filters)."""
    lanes = list(Lane.objects.order_by("-last_event_at", "-created_at"))
    turns = turn_counts([lane.thread_id for lane in lanes])
    depths = queue_depths(lanes)
    rows = []
    for lane in lanes:
        count, started = turns.get(lane.thread_id, (0, None))
        rows.append(
            {
                "ref": lane.ref,
                "thread_id": lane.thread_id,
                "title": lane.title,
                "status": lane.status,
                "source": lane.source,
                "host": lane.host,
                "cwd": lane.cwd,
                "turn_number": count,
                "turn_status": lane.latest_turn_status,
                "turn_started_at": iso(started),
                "active": bool(lane.active_turn_id),
                "error": lane.latest_error,
                "queue": depths.get(lane.pk, 0),
                "queue_held": lane.queue_held,
                "last_event_at": iso(lane.last_event_at),
                "live_url": reverse("lanes:live", args=[lane.ref]),
                "admin_url": reverse("admin:lanes_lane_change", args=[lane.pk]),
            }
        )
    return rows


def choices(rows: list[dict[str, Any]], key: str) -> list[str]:
    return sorted({row[key] for row in rows if row[key]})


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    rows = lane_rows()
    config = {
        "rowsUrl": reverse("lanes:dashboard-rows"),
        "wsPath": "/ws/events",
        "refreshSeconds": REFRESH_SECONDS,
        "rows": rows,
        "filters": {key: request.GET.get(key, "") for key in FILTERS},
    }
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Lanes",
        "is_nav_sidebar_enabled": False,
        "config": config,
        "statuses": [status for status, _label in Lane.Status.choices],
        "hosts": choices(rows, "host"),
        "sources": [source for source, _label in Lane.Source.choices],
        "new_url": reverse("admin:lanes_lane_add"),
    }
    return render(request, "lanes/dashboard.html", context)


@staff_member_required
def dashboard_rows(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"lanes": lane_rows()})
