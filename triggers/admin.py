"""Django admin for triggers: a changelist with pause/resume/fire actions.

Rows are owned by the services (schedules, counters, the ledger), so the
models are view-only here and the actions call the services with an admin
origin, exactly like the CLI does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from dispatchsite.core.errors import DispatchError
from dispatchsite.core.origin import Origin
from lanes.admin_base import ReadOnlyAdmin, ReadOnlyInlineMixin
from triggers.models import Trigger, TriggerFiring

RECENT_FIRINGS = 20


def admin_origin(request: HttpRequest) -> Origin:
    actor = getattr(request.user, "get_username", lambda: "")()
    return Origin(surface="admin", actor=f"admin:{actor}")


def each(
    request: HttpRequest,
    queryset: QuerySet[Trigger],
    verb: str,
    call: Callable[[Trigger, Origin], Any],
) -> None:
    done = 0
    for trigger in queryset.select_related("lane"):
        try:
            call(trigger, admin_origin(request))
            done += 1
        except DispatchError as exc:
            messages.error(request, f"{trigger.id}: {exc.message}")
    if done:
        messages.success(request, f"{verb} {done} trigger(s)")


class RecentFirings(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet[TriggerFiring]:
        return super().get_queryset().order_by("-id")[:RECENT_FIRINGS]  # type: ignore[no-any-return]


class FiringInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = TriggerFiring
    formset = RecentFirings
    fields = ("id", "slot_at", "reason", "outcome", "detail", "turn_id", "started_at")
    readonly_fields = fields
    verbose_name_plural = f"recent firings (last {RECENT_FIRINGS})"


@admin.register(Trigger)
class TriggerAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "name",
        "kind",
        "lane",
        "action",
        "enabled",
        "next_due_at",
        "last_outcome",
        "consecutive_failures",
        "fired_count",
    )
    list_filter = ("kind", "enabled", "last_outcome")
    search_fields = ("id", "name", "lane__title", "lane__ref")
    exclude = ("secret", "last_delivered_text")
    inlines = (FiringInline,)
    actions = ("pause", "resume", "fire")

    @admin.action(description="Pause selected triggers")
    def pause(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        from triggers.services import trigger_pause

        each(
            request,
            queryset,
            "paused",
            lambda t, o: trigger_pause(trigger=t, origin=o),
        )

    @admin.action(description="Resume selected triggers")
    def resume(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        from triggers.services import trigger_resume

        each(
            request,
            queryset,
            "resumed",
            lambda t, o: trigger_resume(trigger=t, origin=o),
        )

    @admin.action(description="Fire selected triggers once now")
    def fire(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        from triggers.services import trigger_fire

        def run(trigger: Trigger, origin: Origin) -> None:
            firing = trigger_fire(trigger=trigger, origin=origin)
            level = messages.SUCCESS if firing.outcome == "fired" else messages.WARNING
            messages.add_message(
                request, level, f"{trigger.id}: {firing.outcome}: {firing.detail}"
            )

        each(request, queryset, "fired", run)
