"""The live lane page: a staff-only transcript that streams over the websocket.

The page itself is static HTML plus lanes/static/lanes/live.js, which reads
`/ws/lanes/<ref>/events` with the session's login and renders each journal
frame. Its message box posts to `live_send`, its Stop button to `live_stop`
and a held approval's buttons to `live_respond`: each runs its op (`send`,
`stop`, `request-respond`) like every other surface does, as `admin:<user>`.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dispatchsite.core.errors import DispatchError
from lanes.appserver.protocol import APPROVAL_METHODS
from lanes.models import Lane

SEND_MODES = ("send", "steer", "queue", "interject", "context")


def live_url(lane: Lane) -> str:
    """Where the admin links to a lane's live page."""
    return reverse("lanes:live", args=[lane.ref])


def lane_or_404(selector: str) -> Lane:
    from lanes.selectors import find_lane

    try:
        lane = find_lane(selector, fuzzy=True)
    except DispatchError as exc:  # e.g. an ambiguous title
        raise Http404(exc.message) from None
    if lane is None:
        raise Http404(f"no managed lane matches {selector!r}")
    return lane


@staff_member_required
def live(request: HttpRequest, selector: str) -> HttpResponse:
    lane = lane_or_404(selector)
    config = {
        "ref": lane.ref,
        "wsPath": f"/ws/lanes/{lane.ref}/events",
        "sendUrl": reverse("lanes:live-send", args=[lane.ref]),
        "stopUrl": reverse("lanes:live-stop", args=[lane.ref]),
        "respondUrl": reverse("lanes:live-respond", args=[lane.ref]),
        "active": bool(lane.active_turn_id),
        "approvalMethods": sorted(APPROVAL_METHODS),
    }
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": f"{lane.handle} live",
        # The transcript needs the width more than the app list does.
        "is_nav_sidebar_enabled": False,
        "lane": lane,
        "config": config,
        "modes": SEND_MODES,
        "change_url": reverse("admin:lanes_lane_change", args=[lane.pk]),
    }
    return render(request, "lanes/live.html", context)


def run_op(op_id: str, params: dict[str, Any], actor: str) -> dict[str, Any]:
    from dispatchsite.core.registry import Origin, execute

    return execute(op_id, params, Origin(surface="admin", actor=actor))


def run_send(lane_ref: str, text: str, mode: str, actor: str) -> dict[str, Any]:
    return run_op("send", {"lane": lane_ref, "text": text, "mode": mode}, actor)


async def answer(
    request: HttpRequest, op_id: str, params: dict[str, Any]
) -> JsonResponse:
    """Run one op for the page's user; the JSON op result or error."""
    user = await request.auser()
    actor = f"admin:{user.get_username()}"
    try:
        # Ops wait on the worker (turn/start, or a whole turn for an
        # interject): off the shared sync thread, so pages stay responsive.
        if op_id == "send":
            result = await sync_to_async(run_send, thread_sensitive=False)(
                params["lane"], params["text"], params["mode"], actor
            )
        else:
            result = await sync_to_async(run_op, thread_sensitive=False)(
                op_id, params, actor
            )
    except DispatchError as exc:
        return JsonResponse(exc.as_dict(), status=exc.http_status)
    return JsonResponse({"ok": True, "result": result})


@require_POST
@staff_member_required
async def live_send(request: HttpRequest, selector: str) -> JsonResponse:
    """Run `send` in one of its modes."""
    text = request.POST.get("text", "")
    mode = request.POST.get("mode") or "send"
    return await answer(request, "send", {"lane": selector, "text": text, "mode": mode})


@require_POST
@staff_member_required
async def live_stop(request: HttpRequest, selector: str) -> JsonResponse:
    """Run `stop`: interrupt the lane's active turn."""
    return await answer(request, "stop", {"lane": selector})


def form_int(value: str) -> int | str:
    """A form's digits as the int ops expect; anything else as sent, for the
    op's validation error to name."""
    return int(value) if value.isdigit() else value


@require_POST
@staff_member_required
async def live_respond(request: HttpRequest, selector: str) -> JsonResponse:
    """Run `request-respond` for a held approval of this page's lane."""
    return await answer(
        request,
        "request-respond",
        {
            "id": form_int(request.POST.get("id", "")),
            "decision": request.POST.get("decision", ""),
        },
    )
