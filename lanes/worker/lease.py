"""The worker's claim on its host: one live worker (and app-server) per host.

The WorkerLease row is unique per host, so the claim is that row: created
when there is none, taken over by a conditional UPDATE (matching the row as
it was read) when its holder is gone, refused otherwise. A holder is gone
when its heartbeat is older than the freshness window, or at once when it
ran on this machine and its pid is dead (a supervisor restarting a killed
worker must not wait for the window).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from dispatchsite.core.errors import ValidationError
from lanes.models import WorkerLease

log = logging.getLogger("dispatch.worker")

# Another claimant can change the row between our read and our UPDATE; each
# round re-reads it, and a real contest ends in a refusal well before this.
CLAIM_ROUNDS = 5
FIX = "pick another --host, or stop that worker"


def machine_identity() -> str:
    """Where a pid names one process: host name, boot and pid namespace.

    The boot id tells a rebooted machine (whose pids restarted) from the
    same boot; the pid namespace tells apart containers that share both.
    """
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    except OSError:
        pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return " ".join(part for part in parts if part)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # an unreaped (zombie) worker is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def holder_gone(lease: WorkerLease, *, pid: int, machine: str) -> bool:
    if not lease.is_fresh():
        return True
    if not lease.machine or lease.machine != machine:
        return False
    # Our own pid on our machine: a predecessor (a container's pid 1, say)
    # that is no longer running, as this process has not claimed yet.
    return lease.pid == pid or not pid_alive(lease.pid)


def holder_info(lease: WorkerLease) -> dict[str, Any]:
    age = (timezone.now() - lease.heartbeat_at).total_seconds()
    return {
        "machine": lease.machine or "unknown",
        "pid": lease.pid,
        "heartbeat_age_s": round(age, 1),
    }


def host_taken_error(host: str, lease: WorkerLease, *, lost: bool) -> ValidationError:
    holder = holder_info(lease)
    who = (
        f"worker pid {holder['pid']} on machine {holder['machine']} "
        f"(last heartbeat {holder['heartbeat_age_s']:g} s ago)"
    )
    if lost:
        message = (
            f"--host {host}: this worker lost the host's lease to {who}; "
            "it stopped its app-server rather than run a second one"
        )
    else:
        message = f"--host {host} is already served by {who}"
    return ValidationError(
        message,
        hint=FIX,
        data={"field": "host", "host": host, "holder": holder},
    )


class HostLease:
    """This process's lease on `host`, as the worker claims and renews it."""

    def __init__(self, *, host: str) -> None:
        self.host = host
        self.pid = os.getpid()
        self.machine = machine_identity()
        # Set when another worker took the host: the worker stops with it.
        self.lost: ValidationError | None = None
        # time.monotonic() before the last write that held the lease.
        self.held_at = 0.0

    def mine(self) -> QuerySet[WorkerLease]:
        return WorkerLease.objects.filter(
            host=self.host, pid=self.pid, machine=self.machine
        )

    def claim(self) -> None:
        """Hold the host, or raise ValidationError naming its live holder."""
        for _ in range(CLAIM_ROUNDS):
            began = time.monotonic()
            now = timezone.now()
            values = {
                "pid": self.pid,
                "machine": self.machine,
                "app_server_pid": None,
                "app_server_version": "",
                "started_at": now,
                "heartbeat_at": now,
            }
            try:
                with transaction.atomic():
                    WorkerLease.objects.create(host=self.host, **values)
                self.held_at = began
                return
            except IntegrityError:
                pass
            held = WorkerLease.objects.filter(host=self.host).first()
            if held is None:  # released since: the insert may win now
                continue
            if not holder_gone(held, pid=self.pid, machine=self.machine):
                raise host_taken_error(self.host, held, lost=False)
            taken = WorkerLease.objects.filter(
                pk=held.pk,
                pid=held.pid,
                machine=held.machine,
                heartbeat_at=held.heartbeat_at,
            ).update(**values)
            if taken:
                self.held_at = began
                log.info(
                    "took over the lease of host %s from %s",
                    self.host,
                    holder_info(held),
                )
                return
        held = WorkerLease.objects.filter(host=self.host).first()
        assert held is not None  # every round found a row changing under it
        raise host_taken_error(self.host, held, lost=False)

    def beat(self, *, app_server_pid: int | None, app_server_version: str) -> None:
        """Renew the lease; on finding it taken, set `lost` for the worker."""
        if self.lost is not None:
            return
        began = time.monotonic()
        renewed = self.mine().update(
            heartbeat_at=timezone.now(),
            app_server_pid=app_server_pid,
            app_server_version=app_server_version,
        )
        if renewed:
            self.held_at = began
            return
        held = WorkerLease.objects.filter(host=self.host).first()
        if held is None:
            # The row was deleted, not taken: nobody else serves the host.
            try:
                self.claim()
                return
            except ValidationError as exc:  # taken in the meantime
                self.lost = exc
        else:
            self.lost = host_taken_error(self.host, held, lost=True)
        log.error("%s (%s)", self.lost.message, FIX)

    def held_within(self, seconds: float) -> bool:
        """Whether the lease was renewed in the last `seconds` (no query).

        Nobody takes a lease younger than its freshness window, so a recent
        renewal proves it is still ours; a worker that was stalled (frozen,
        swapped out) must renew before it acts for the host again.
        """
        return self.lost is None and time.monotonic() - self.held_at < seconds

    def release(self) -> None:
        self.mine().delete()
