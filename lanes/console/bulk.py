"""The lane list's bulk actions: each one op per selected lane, as the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from lanes.console.actions import run_op
from lanes.console.forms import SendForm
from lanes.models import Lane

BULK_CONFIRM_TEMPLATE = "lanes/console/confirm_bulk.html"
SEND_FORM_TEMPLATE = "lanes/console/send_bulk.html"


def ran(request: HttpRequest, op_id: str, params: dict[str, Any]) -> bool:
    return run_op(request, op_id, params) is not None


class LaneBulkActions(admin.ModelAdmin):
    """Mixed into LaneAdmin; `actions` there names these."""

    def each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Lane],
        op_id: str,
        key: str,
        done: str,
    ) -> None:
        count = sum(ran(request, op_id, {key: lane.ref}) for lane in queryset)
        if count:
            self.message_user(request, f"{done} {count} lane(s)", messages.SUCCESS)

    @admin.action(description="Send a message to the selected lanes")
    def send_message(
        self, request: HttpRequest, queryset: QuerySet[Lane]
    ) -> HttpResponse | None:
        form = SendForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            sent = sum(
                ran(
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
        context = {
            **self.admin_site.each_context(request),
            "title": "Send a message",
            "form": form,
            "lanes": list(queryset),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, SEND_FORM_TEMPLATE, context)

    @admin.action(description="Stop the active turn of the selected lanes")
    def stop_turn(self, request: HttpRequest, queryset: QuerySet[Lane]) -> None:
        self.each(request, queryset, "stop", "lane", "stopped")

    @admin.action(description="Archive the selected lanes")
    def archive_lane(
        self, request: HttpRequest, queryset: QuerySet[Lane]
    ) -> HttpResponse | None:
        # `archive` is a destroy op: the admin asks first, like the CLI.
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Archive lanes?",
                "lanes": list(queryset),
                "action": "archive_lane",
                "opts": self.model._meta,
            }
            return TemplateResponse(request, BULK_CONFIRM_TEMPLATE, context)
        self.each(request, queryset, "archive", "target", "archived")
        return None

    @admin.action(description="Restore the selected archived lanes")
    def restore_lane(self, request: HttpRequest, queryset: QuerySet[Lane]) -> None:
        self.each(request, queryset, "restore", "target", "restored")

    @admin.action(description="Compact the context of the selected lanes")
    def compact_lane(self, request: HttpRequest, queryset: QuerySet[Lane]) -> None:
        self.each(request, queryset, "compact", "lane", "compacting")

    @admin.action(description="Sync the history index of the selected lanes")
    def sync_lane(self, request: HttpRequest, queryset: QuerySet[Lane]) -> None:
        self.each(request, queryset, "sync", "lane", "synced")
