"""The console's pages: the new-lane form, the lane page's panel, its buttons."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from lanes.console.actions import (
    ACTIONS,
    bound_form,
    form_errors,
    is_destroy,
    run_op,
    summary,
)
from lanes.console.forms import ForkForm, GoalForm, NewLaneForm, RenameForm, SendForm
from lanes.models import Lane, QueuedMessage

TRANSCRIPT_ITEMS = 20
QUEUE_ROWS = 20


def change_url(lane: Lane) -> str:
    return reverse("admin:lanes_lane_change", args=[lane.pk])


def lane_by_ref(ref: Any) -> Lane | None:
    return Lane.objects.filter(ref=ref).first() if isinstance(ref, str) else None


def new_lane(model_admin: ModelAdmin[Lane], request: HttpRequest) -> HttpResponse:
    """The `new` op as a form; on success, the new lane's page."""
    form = NewLaneForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        result = run_op(request, "new", form.params())
        lane = lane_by_ref((result or {}).get("ref"))
        if lane is not None:
            messages.success(request, f"created {lane.handle} ({lane.ref})")
            return HttpResponseRedirect(change_url(lane))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "New lane",
        "form": form,
        "opts": Lane._meta,
    }
    return TemplateResponse(request, "lanes/console/new.html", context)


def lane_action(
    model_admin: ModelAdmin[Lane], request: HttpRequest, object_id: str, action: str
) -> HttpResponse:
    """One button of the lane page: validate, confirm if destructive, run the op."""
    lane = Lane.objects.filter(pk=object_id).first() if object_id.isdigit() else None
    spec = ACTIONS.get(action)
    if lane is None or spec is None:
        raise Http404("no such lane or action")
    if not model_admin.has_view_permission(request, lane):
        raise PermissionDenied
    back = HttpResponseRedirect(change_url(lane))
    if request.method != "POST":
        return back
    form = bound_form(spec, request)
    if form is not None and not form.is_valid():
        messages.error(request, f"{spec.op_id}: {form_errors(form)}")
        return back
    params = spec.params(lane, form.cleaned_data if form is not None else {})
    if is_destroy(spec.op_id) and request.POST.get("confirm") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": f"{spec.label} {lane.handle}?",
            "lane": lane,
            "action": spec,
            "params": params,
            "fields": [
                (key, value)
                for key, value in request.POST.items()
                if key not in ("csrfmiddlewaretoken", "confirm")
            ],
            "cancel_url": change_url(lane),
            "opts": Lane._meta,
        }
        return TemplateResponse(request, "lanes/console/confirm.html", context)
    result = run_op(request, spec.op_id, params)
    if result is None:
        return back
    messages.success(request, summary(spec.op_id, result))
    forked = lane_by_ref(result.get("ref")) if spec.op_id == "fork" else None
    return HttpResponseRedirect(change_url(forked)) if forked else back


def turn_number(lane: Lane) -> int:
    from lanes.dashboard import turn_counts

    return turn_counts([lane.thread_id]).get(lane.thread_id, (0, None))[0]


def goal_initial(lane: Lane) -> dict[str, Any]:
    goal = lane.goal if isinstance(lane.goal, dict) else {}
    return {
        "objective": goal.get("objective", ""),
        "status": goal.get("status", ""),
        "token_budget": goal.get("tokenBudget") or goal.get("token_budget"),
    }


def lane_buttons(lane: Lane) -> list[str]:
    """The one-click actions that make sense in the lane's state."""
    if lane.status == Lane.Status.ARCHIVED:
        return ["restore", "sync"]
    names = ["stop"] if lane.active_turn_id else []
    names += ["compact", "sync"]
    if lane.goal:
        names.append("goal-clear")
    return [*names, "archive"]


def console_context(lane: Lane) -> dict[str, Any]:
    """What the lane page shows above its fields, and the forms it offers."""
    from lanes.history.transcript import journal_items
    from lanes.services.requests import held_requests, request_view

    queue = list(
        lane.queue.exclude(status=QueuedMessage.Status.SENT).order_by("id")[:QUEUE_ROWS]
    )
    return {
        "lane": lane,
        "live_url": reverse("lanes:live", args=[lane.ref]),
        "turn_number": turn_number(lane),
        "queue": queue,
        "held": [request_view(row, lane) for row in held_requests(lane=lane)],
        # Local rows only: the page must render when the worker is down.
        "transcript": journal_items(thread_id=lane.thread_id, limit=TRANSCRIPT_ITEMS),
        # Keyed with underscores: templates cannot look up "goal-set".
        "act": {
            name.replace("-", "_"): reverse(
                "admin:lanes_lane_act", args=[lane.pk, name]
            )
            for name in ACTIONS
        },
        "buttons": [(name, ACTIONS[name].label) for name in lane_buttons(lane)],
        "send_form": SendForm(),
        "rename_form": RenameForm(initial={"new": lane.title}),
        "goal_form": GoalForm(initial=goal_initial(lane)),
        "fork_form": ForkForm(initial={"name": f"{lane.title}-fork"}),
    }
