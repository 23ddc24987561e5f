"""Django admin for lanes: a read-mostly console whose actions are ops.

Nothing here writes lane state directly: the actions call
`dispatchsite.core.registry.execute` exactly like the CLI and REST do, and the models
are view-only because their rows are owned by services and the worker.
Heavy imports (pydantic, the op registry) stay inside the actions, since
admin autodiscovery imports this module in every process.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from lanes.models import (
    ApiToken,
    AuditEntry,
    Lane,
    LaneEvent,
    QueuedMessage,
    ServerRequest,
    WorkerLease,
)

RECENT_EVENTS = 50

SEND_FORM_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}
<p>Send a message to {{ lanes|length }} lane{{ lanes|length|pluralize }}:
{% for lane in lanes %}<code>{{ lane.ref }}</code> @{{ lane.title }}
{% if not forloop.last %}, {% endif %}{% endfor %}</p>
<form method="post">{% csrf_token %}
  {{ form.as_p }}
  {% for lane in lanes %}
  <input type="hidden" name="_selected_action" value="{{ lane.pk }}">
  {% endfor %}
  <input type="hidden" name="action" value="send_message">
  <input type="submit" name="apply" value="Send">
  <a href="{{ request.get_full_path }}">Cancel</a>
</form>
{% endblock %}
"""


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def run_op(request: HttpRequest, op_id: str, params: dict[str, Any]) -> bool:
    """Execute one op for the admin; report failures as messages."""
    from dispatchsite.core.errors import DispatchError
    from dispatchsite.core.registry import Origin, execute

    actor = getattr(request.user, "get_username", lambda: "")()
    try:
        execute(op_id, params, Origin(surface="admin", actor=f"admin:{actor}"))
    except DispatchError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        messages.error(request, f"{op_id} {params}: {exc.message}{hint}")
        return False
    return True


def send_modes() -> list[tuple[str, str]]:
    import typing

    from lanes.ops.messages import SendMode

    return [(mode, mode) for mode in typing.get_args(SendMode)]


class SendMessageForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}))
    mode = forms.ChoiceField(initial="send")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mode = self.fields["mode"]
        assert isinstance(mode, forms.ChoiceField)
        mode.choices = send_modes()


@admin.register(Lane)
class LaneAdmin(ReadOnlyAdmin):
    list_display = (
        "ref",
        "title",
        "status",
        "source",
        "host",
        "cwd",
        "latest_turn_status",
        "last_event_at",
    )
    list_filter = ("status", "source", "host")
    search_fields = ("ref", "title", "thread_id", "cwd")
    readonly_fields = ("recent_events",)
    actions = ("send_message", "stop_turn", "archive_lane")
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

    @admin.action(description="Send a message to the selected lanes")
    def send_message(
        self, request: HttpRequest, queryset: QuerySet[Lane]
    ) -> HttpResponse | None:
        form = SendMessageForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            sent = sum(
                run_op(
                    request,
                    "send",
                    {
                        "lane": lane.ref,
                        "text": form.cleaned_data["text"],
                        "mode": form.cleaned_data["mode"],
                    },
                )
                for lane in queryset
            )
            if sent:
                self.message_user(request, f"sent to {sent} lane(s)", messages.SUCCESS)
            return None
        template = engines["django"].from_string(SEND_FORM_TEMPLATE)
        context = {
            **self.admin_site.each_context(request),
            "title": "Send a message",
            "form": form,
            "lanes": list(queryset),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, template, context)

    @admin.action(description="Stop the active turn of the selected lanes")
    def stop_turn(self, request: HttpRequest, queryset: QuerySet[Lane]) -> None:
        done = sum(run_op(request, "stop", {"lane": lane.ref}) for lane in queryset)
        if done:
            self.message_user(request, f"stopped {done} lane(s)", messages.SUCCESS)

    @admin.action(description="Archive the selected lanes")
    def archive_lane(self, request: HttpRequest, queryset: QuerySet[Lane]) -> None:
        done = sum(
            run_op(request, "archive", {"target": lane.ref}) for lane in queryset
        )
        if done:
            self.message_user(request, f"archived {done} lane(s)", messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("ts", "op", "lane", "outcome", "surface", "trigger_id", "detail")
    list_filter = ("op", "outcome", "surface")
    search_fields = ("lane", "detail", "trigger_id")
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

    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = (
        "name",
        "prefix",
        "token_hash",
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
    list_display = ("id", "thread_id", "method", "state", "received_at", "resolved_at")
    list_filter = ("state", "method")
    search_fields = ("thread_id", "method")


@admin.register(WorkerLease)
class WorkerLeaseAdmin(ReadOnlyAdmin):
    list_display = (
        "host",
        "pid",
        "app_server_pid",
        "app_server_version",
        "started_at",
        "heartbeat_at",
        "fresh",
    )

    @admin.display(boolean=True)
    def fresh(self, lease: WorkerLease) -> bool:
        return lease.is_fresh()
