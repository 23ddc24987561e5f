"""Daemon read ops: status and the audit log."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op

DAEMON_READ = "dispatch_daemon_read"


class NoInput(OpInput):
    pass


class StatusOut(OpOutput):
    lanes: int
    idle: int
    busy: int
    waiting_approval: int
    error: int
    archived: int
    active: int
    triggers: int
    triggers_enabled: int
    daemon: dict[str, Any]
    hosts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="each host: live, lease_age_s, app_server_version, lane counts",
    )


@define_op(
    id="status",
    summary="daemon components and lane counts",
    intent="read",
    idempotent=True,
    input=NoInput,
    output=StatusOut,
    cli="daemon status",
    http=("GET", "/daemon/status"),
    mcp_tool=DAEMON_READ,
    mcp_action="status",
)
def status(data: NoInput, origin: Origin) -> dict[str, Any]:
    from django.db.utils import OperationalError

    from dispatchsite.runtime.status import stack_status
    from lanes.models import Lane
    from lanes.services.hosts import hosts_overview
    from triggers.models import Trigger

    counts = {value: 0 for value in Lane.Status.values}
    daemon = stack_status()
    triggers = {True: 0, False: 0}
    hosts: list[dict[str, Any]] = []
    try:
        hosts = hosts_overview()
        for value in Lane.objects.values_list("status", flat=True):
            counts[value] = counts.get(value, 0) + 1
        for enabled in Trigger.objects.values_list("enabled", flat=True):
            triggers[enabled] += 1
    except OperationalError:
        # A home that was never started has no database yet: nothing runs
        # and there are no lanes, which is an answer, not an error.
        daemon = {**daemon, "hint": "not started yet: start it with `dispatch up`"}
    return {
        "lanes": sum(counts.values()) - counts["archived"],
        "idle": counts["idle"],
        "busy": counts["busy"],
        "waiting_approval": counts["waiting_approval"],
        "error": counts["error"],
        "archived": counts["archived"],
        "active": counts["busy"] + counts["waiting_approval"],
        "triggers": triggers[True] + triggers[False],
        "triggers_enabled": triggers[True],
        "daemon": daemon,
        "hosts": hosts,
    }


class LogIn(OpInput):
    limit: int = Field(20, ge=1, le=1000, description="most recent entries")


class LogOut(OpOutput):
    actions: list[dict[str, Any]]


@define_op(
    id="log",
    summary="the audit log of write ops and trigger firings",
    intent="read",
    idempotent=True,
    input=LogIn,
    output=LogOut,
    cli="daemon log",
    http=("GET", "/daemon/log"),
    mcp_tool=DAEMON_READ,
    mcp_action="log",
)
def audit_log(data: LogIn, origin: Origin) -> dict[str, Any]:
    from lanes.models import AuditEntry

    return {"actions": [e.as_dict() for e in AuditEntry.objects.all()[: data.limit]]}
