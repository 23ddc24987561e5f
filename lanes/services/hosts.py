"""Hosts: the machines whose workers own an app-server each.

Every lane belongs to one host (Lane.host) and its commands go to that
host's worker channel. A host is live while its worker's WorkerLease is
fresh. A lane is never moved implicitly: `lane move` does it on request,
resuming the thread on the new host's app-server from the rollout.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from dispatchsite.core.errors import (
    DispatchError,
    HostUnavailableError,
    LaneBusyError,
    NotFoundError,
    ValidationError,
)
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import (
    THREAD_RESUME,
    is_not_found_error,
    is_thread_missing_error,
)
from lanes.models import Lane, WorkerLease
from lanes.services.audit import audit_failures, audit_record
from lanes.services.authority import lane_busy_check
from lanes.worker import gateway

# A host name is part of a channel name (`dispatch.appserver.<host>`).
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def host_name_check(host: str, *, field: str = "--host") -> str:
    host = host.strip()
    if not HOST_NAME.match(host):
        raise ValidationError(
            f"{field} {host!r} is not a host name: use letters, digits, '.', "
            "'_' and '-' (at most 100, starting with a letter or digit)",
            hint="e.g. --host build-1",
            data={"field": field},
        )
    return host


def live_hosts() -> list[str]:
    return sorted(lease.host for lease in WorkerLease.objects.all() if lease.is_fresh())


def host_require_live(host: str) -> None:
    """HostUnavailableError unless `host` has a worker with a fresh lease."""
    lease = WorkerLease.objects.filter(host=host).first()
    if lease is not None and lease.is_fresh():
        return
    live = live_hosts()
    raise HostUnavailableError(
        f"host {host!r} has no live dispatch worker"
        + (f" (live: {', '.join(live)})" if live else " (no host is live)"),
        hint=f"start `dispatch worker --host {host}` on that machine, or choose "
        "a live host with --host",
        data={"host": host, "live_hosts": live},
    )


def host_choose(requested: str | None) -> str:
    """The host a new lane goes to: the one asked for (live), or the least
    loaded live host; this machine's DISPATCH_HOST when none is live (the
    call to it then answers host_unavailable)."""
    if requested is not None:
        host = host_name_check(requested)
        host_require_live(host)
        return host
    live = live_hosts()
    local = settings.DISPATCH_HOST
    if not live or live == [local]:
        return local
    load = {
        row["host"]: (row["active"], row["total"])
        for row in Lane.objects.filter(host__in=live)
        .exclude(status=Lane.Status.ARCHIVED)
        .values("host")
        .annotate(
            total=Count("id"),
            active=Count("id", filter=~Q(active_turn_id="")),
        )
    }
    # Fewest running turns, then fewest lanes; ties stay on this machine.
    return min(live, key=lambda h: (*load.get(h, (0, 0)), h != local, h))


def hosts_overview() -> list[dict[str, Any]]:
    """Every known host: its lease (age, app-server version) and lane counts."""
    now = timezone.now()
    leases = {lease.host: lease for lease in WorkerLease.objects.all()}
    counts: dict[str, dict[str, int]] = {}
    for host, status in Lane.objects.values_list("host", "status"):
        by_status = counts.setdefault(host, {})
        by_status[status] = by_status.get(status, 0) + 1
    hosts = []
    for host in sorted(set(leases) | set(counts)):
        lease = leases.get(host)
        by_status = counts.get(host, {})
        archived = by_status.get(Lane.Status.ARCHIVED, 0)
        hosts.append(
            {
                "host": host,
                "live": bool(lease and lease.is_fresh()),
                "lease_age_s": (
                    round((now - lease.heartbeat_at).total_seconds(), 1)
                    if lease
                    else None
                ),
                "worker_pid": lease.pid if lease else None,
                # Host name, boot and pid namespace: which machine that pid is on.
                "worker_machine": (lease.machine or None) if lease else None,
                "app_server_version": (lease.app_server_version or None)
                if lease
                else None,
                "lanes": sum(by_status.values()) - archived,
                "active": by_status.get(Lane.Status.BUSY, 0)
                + by_status.get(Lane.Status.WAITING_APPROVAL, 0),
                "archived": archived,
            }
        )
    return hosts


def rollout_missing_error(*, lane: Lane, target: str, reason: str) -> NotFoundError:
    return NotFoundError(
        f"host {target!r} cannot resume lane {lane.ref}: its app-server has no "
        f"rollout for thread {lane.thread_id} ({reason}). A thread's rollout "
        f"lives under CODEX_HOME/sessions of the host that ran it "
        f"({lane.host!r}); the target's CODEX_HOME must see the same file",
        hint="share CODEX_HOME/sessions between the hosts (or copy the "
        f"rollout-*-{lane.thread_id}.jsonl file into the target's "
        "CODEX_HOME/sessions), then move again",
        data={"field": "host", "host": target, "thread_id": lane.thread_id},
    )


def lane_move(*, lane: Lane, host: str, origin: Origin) -> Lane:
    """Put `lane` on `host`: resume its thread there, then repoint the lane."""
    source = lane.host
    with audit_failures(op="lane-move", lane=lane, origin=origin):
        target = host_name_check(host)
        if target == source:
            raise ValidationError(
                f"lane {lane.ref} is already on host {target!r}",
                hint="name another host with --host",
                data={"field": "host"},
            )
        if lane.source != Lane.Source.OWN:
            raise ValidationError(
                f"lane {lane.ref} is attached (observed, owned elsewhere): only "
                "lanes dispatch owns can move",
                hint="move the process that owns the thread instead",
                data={"field": "lane"},
            )
        lane_busy_check(lane)
        host_require_live(target)
        try:
            gateway.rpc(
                target,
                THREAD_RESUME,
                {"threadId": lane.thread_id, "excludeTurns": True},
            )
        except gateway.RpcFailed as exc:
            if is_not_found_error(exc.message) or is_thread_missing_error(exc.message):
                raise rollout_missing_error(
                    lane=lane, target=target, reason=exc.message
                ) from None
            raise gateway.classify_rpc_error(exc) from None
        # Conditional: a turn started or another move meanwhile wins.
        moved = Lane.objects.filter(pk=lane.pk, host=source, active_turn_id="").update(
            host=target
        )
        if not moved:
            raise LaneBusyError(
                f"lane {lane.ref} changed while it was being moved (a turn "
                "started, or another move)",
                hint="check `dispatch get` and move again",
            )
    audit_record(
        op="lane-move", lane=lane, detail=f"{source} -> {target}", origin=origin
    )
    _release_on(source, lane)
    lane.refresh_from_db()
    if lane.status == Lane.Status.IDLE and not lane.queue_held:
        gateway.notify_worker(
            target, {"type": "appserver.drain", "thread_id": lane.thread_id}
        )
    return lane


def _release_on(host: str, lane: Lane) -> None:
    """Stop the old host's app-server writing the thread, when it is up."""
    try:
        gateway.rpc(host, "thread/unsubscribe", {"threadId": lane.thread_id})
    except DispatchError:
        pass  # a down host has nothing loaded; it resumes only its own lanes
