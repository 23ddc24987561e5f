"""Django admin for lanes: the operator's console, whose every action is an op.

Nothing here writes lane state directly: list actions, the lane page's
buttons and the "add lane" form (lanes.console) call
`dispatchsite.core.registry.execute` with an admin Origin, exactly like the
CLI and REST do, so authority, destroy confirmation and the audit log apply.
The models stay view-only because their rows are owned by services and the
worker. Heavy imports (pydantic, the op registry) stay inside the actions,
since admin autodiscovery imports this module in every process.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from lanes.admin_base import ReadOnlyAdmin, ReadOnlyInlineMixin
from lanes.console import views as console
from lanes.console.bulk import LaneBulkActions, ran
from lanes.models import (
    ApiToken,
    AuditEntry,
    Lane,
    LaneEvent,
    LaneGoal,
    QueuedMessage,
    ServerRequest,
    WorkerLease,
)

RECENT_EVENTS = 50

# The whole admin is dispatch's console; "View site" opens the dashboard.
admin.site.site_header = "dispatch"
admin.site.site_title = "dispatch"
admin.site.index_title = "Console"
admin.site.site_url = "/"


class LaneGoalInline(ReadOnlyInlineMixin, admin.TabularInline):
    """Every goal the lane has had (kept by the services and the journal)."""

    model = LaneGoal
    ordering = ("-id",)
    fields = (
        "objective",
        "status",
        "token_budget",
        "tokens_used",
        "time_used_seconds",
        "set_by",
        "cleared_by",
        "created_at",
        "completed_at",
        "cleared_at",
    )
    readonly_fields = fields


@admin.register(Lane)
class LaneAdmin(LaneBulkActions, ReadOnlyAdmin):
    list_display = (
        "ref",
        "title",
        "status",
        "source",
        "host",
        "cwd",
        "latest_turn_status",
        "last_event_at",
        "live_link",
    )
    list_filter = ("status", "source", "host")
    search_fields = ("ref", "title", "thread_id", "cwd")
    readonly_fields = ("recent_events",)
    actions = (
        "send_message",
        "stop_turn",
        "archive_lane",
        "restore_lane",
        "compact_lane",
        "sync_lane",
    )
    change_form_template = "admin/lanes/lane/change_form.html"
    inlines = (LaneGoalInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "ref",
                    "title",
                    "thread_id",
                    "source",
                    "status",
                    "host",
                    "cwd",
                )
            },
        ),
        (
            "Turns",
            {
                "fields": (
                    "active_turn_id",
                    "latest_turn_id",
                    "latest_turn_status",
                    "latest_error",
                    "latest_error_at",
                    "queue_held",
                )
            },
        ),
        (
            "Settings",
            {"fields": ("model_provider", "model", "runtime_settings", "goal")},
        ),
        ("Events", {"fields": ("created_at", "last_event_at", "recent_events")}),
    )

    @admin.display(description=f"recent events (latest {RECENT_EVENTS})")
    def recent_events(self, lane: Lane) -> str:
        events = list(
            LaneEvent.objects.filter(thread_id=lane.thread_id).order_by("-seq")[
                :RECENT_EVENTS
            ]
        )
        if not events:
            return "no events yet"
        rows = format_html_join(
            "\n",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            (
                (
                    e.seq,
                    e.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.method,
                    e.turn_id,
                )
                for e in events
            ),
        )
        return format_html(
            "<table><thead><tr><th>seq</th><th>received</th><th>method</th>"
            "<th>turn</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # -- the console: new lane, the lane page's panel and buttons ------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        # "Add" is the `new` op, which does its own checks.
        return self.has_view_permission(request)

    def add_view(
        self,
        request: HttpRequest,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return console.new_lane(self, request)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        lane = (
            Lane.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        )
        extra = {**(extra_context or {})}
        if lane is not None:
            extra["console"] = console.console_context(lane)
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[URLPattern]:
        def act(request: HttpRequest, object_id: str, action: str) -> HttpResponse:
            return console.lane_action(self, request, object_id, action)

        return [
            path(
                "<path:object_id>/act/<str:action>/",
                self.admin_site.admin_view(act),
                name="lanes_lane_act",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="live")
    def live_link(self, lane: Lane) -> str:
        return format_html(
            '<a href="{}">live</a>', reverse("lanes:live", args=[lane.ref])
        )


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "ts",
        "op",
        "lane",
        "outcome",
        "surface",
        "actor",
        "trigger_id",
        "detail",
    )
    list_filter = ("op", "outcome", "surface")
    search_fields = ("lane", "detail", "trigger_id", "actor")
    date_hierarchy = "ts"


@admin.register(QueuedMessage)
class QueuedMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "lane", "status", "short_text", "turn_id", "created_at")
    list_filter = ("status",)
    search_fields = ("text", "lane__ref", "lane__title")
    list_select_related = ("lane",)

    @admin.display(description="text")
    def short_text(self, message: QueuedMessage) -> str:
        return message.text[:80]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are created with `dispatch token create` (the value is shown once)."""

    list_display = (
        "name",
        "prefix",
        "read_only",
        "lane_ids",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = (
        "name",
        "prefix",
        "token_hash",
        "read_only",
        "lane_ids",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ("revoke",)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        from lanes.tokens import api_token_revoke

        for token in queryset:
            api_token_revoke(name=token.name)
        self.message_user(
            request, f"revoked {queryset.count()} token(s)", messages.SUCCESS
        )


@admin.register(ServerRequest)
class ServerRequestAdmin(ReadOnlyAdmin):
    """The approvals inbox: held requests are answered with the actions."""

    list_display = (
        "id",
        "thread_id",
        "method",
        "state",
        "held",
        "decision",
        "answered_by",
        "received_at",
        "resolved_at",
    )
    list_filter = ("state", "held", "method")
    search_fields = ("thread_id", "method")
    actions = ("accept_requests", "decline_requests", "cancel_requests")

    def respond(
        self, request: HttpRequest, queryset: QuerySet[ServerRequest], decision: str
    ) -> None:
        done = sum(
            ran(request, "request-respond", {"id": row.pk, "decision": decision})
            for row in queryset
        )
        if done:
            self.message_user(
                request, f"{decision}: {done} request(s) answered", messages.SUCCESS
            )

    @admin.action(description="Accept the selected held requests")
    def accept_requests(
        self, request: HttpRequest, queryset: QuerySet[ServerRequest]
    ) -> None:
        self.respond(request, queryset, "accept")

    @admin.action(description="Decline the selected held requests")
    def decline_requests(
        self, request: HttpRequest, queryset: QuerySet[ServerRequest]
    ) -> None:
        self.respond(request, queryset, "decline")

    @admin.action(description="Cancel the selected held requests (ends their turns)")
    def cancel_requests(
        self, request: HttpRequest, queryset: QuerySet[ServerRequest]
    ) -> None:
        self.respond(request, queryset, "cancel")


@admin.register(WorkerLease)
class WorkerLeaseAdmin(ReadOnlyAdmin):
    list_display = (
        "host",
        "pid",
        "machine",
        "app_server_pid",
        "app_server_version",
        "started_at",
        "heartbeat_at",
        "fresh",
    )

    @admin.display(boolean=True)
    def fresh(self, lease: WorkerLease) -> bool:
        return lease.is_fresh()
