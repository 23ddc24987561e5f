"""The lane page's buttons: each one op, with its form and how to fill it.

`lane_action` runs one entry for one lane: it validates the form, asks for
confirmation when the op is destructive (the registry's `intent`), and runs
the op with the admin's Origin. Results and errors become admin messages,
so the operator sees what happened where they clicked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest

from lanes.console.forms import (
    ForkForm,
    GoalForm,
    MessageForm,
    RenameForm,
    RequestForm,
    SendForm,
    filled,
)
from lanes.models import Lane

Params = Callable[[Lane, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Action:
    op_id: str
    label: str
    params: Params
    form: type[forms.Form] | None = None


def on_lane(lane: Lane, data: dict[str, Any]) -> dict[str, Any]:
    return {"lane": lane.ref, **filled(data)}


def on_target(lane: Lane, data: dict[str, Any]) -> dict[str, Any]:
    return {"target": lane.ref}


def on_old(lane: Lane, data: dict[str, Any]) -> dict[str, Any]:
    return {"old": lane.ref, "new": data["new"]}


def as_is(lane: Lane, data: dict[str, Any]) -> dict[str, Any]:
    return filled(data)


ACTIONS: dict[str, Action] = {
    "send": Action("send", "Send", on_lane, SendForm),
    "stop": Action("stop", "Stop the turn", on_lane),
    "rename": Action("lane-rename", "Rename", on_old, RenameForm),
    "archive": Action("archive", "Archive", on_target),
    "restore": Action("restore", "Restore", on_target),
    "goal-set": Action("goal-set", "Set goal", on_lane, GoalForm),
    "goal-clear": Action("goal-clear", "Clear goal", on_lane),
    "fork": Action("fork", "Fork", on_lane, ForkForm),
    "compact": Action("compact", "Compact", on_lane),
    "sync": Action("sync", "Sync history", on_lane),
    "queue-cancel": Action("queue-cancel", "Cancel queued message", as_is, MessageForm),
    "queue-retry": Action("queue-retry", "Retry queued message", as_is, MessageForm),
    "request-respond": Action("request-respond", "Answer approval", as_is, RequestForm),
}


def actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def run_op(
    request: HttpRequest, op_id: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """Execute one op for the admin: its output, or None after an error message."""
    # Imported per call: admin autodiscovery loads this in every process,
    # and tests swap `execute` on the registry module.
    from dispatchsite.core import registry
    from dispatchsite.core.errors import DispatchError
    from dispatchsite.core.origin import Origin

    try:
        return registry.execute(
            op_id, params, Origin(surface="admin", actor=actor(request))
        )
    except DispatchError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        messages.error(request, f"{op_id}: {exc.message}{hint}")
        return None


def is_destroy(op_id: str) -> bool:
    from dispatchsite.core.registry import load_ops

    return load_ops()[op_id].intent == "destroy"


def bound_form(action: Action, request: HttpRequest) -> forms.Form | None:
    return action.form(request.POST) if action.form is not None else None


def form_errors(form: forms.Form) -> str:
    return "; ".join(
        f"{field}: {' '.join(str(e) for e in errors)}"
        for field, errors in form.errors.items()
    )


def summary(op_id: str, result: dict[str, Any]) -> str:
    """One line for the success message: what the op says it did."""
    for key in ("detail", "status"):
        if isinstance(result.get(key), str):
            return f"{op_id}: {result[key]}"
    return f"{op_id}: done"
