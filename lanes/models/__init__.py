"""Lanes: Codex threads under dispatch, their event journal and queues."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from dispatchsite.core.config import Policy
from dispatchsite.core.origin import Origin

ATTACHED_LOCK_REASON = (
    "attached thread; Dispatch does not own this App Server thread "
    "(enable policy.allow_attached_writes to override)"
)

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = BASE58[rem] + out
    return out or BASE58[0]


def ref_payload(thread_id: str) -> str:
    """The stable part of a ref, compatible with the tool users come from."""
    return "0" + base58(hashlib.sha256(f"codex:{thread_id}".encode()).digest())[:4]


class LaneQuerySet(models.QuerySet["Lane"]):
    def visible(self, *, include_archived: bool = False) -> LaneQuerySet:
        if include_archived:
            return self
        return self.exclude(status=Lane.Status.ARCHIVED)

    def on_host(self, host: str) -> LaneQuerySet:
        return self.filter(host=host)


class Lane(models.Model):
    class Source(models.TextChoices):
        OWN = "own"
        ATTACHED = "attached"

    class Status(models.TextChoices):
        IDLE = "idle"
        BUSY = "busy"
        WAITING_APPROVAL = "waiting_approval"
        ERROR = "error"
        ARCHIVED = "archived"
        UNKNOWN = "unknown"

    thread_id = models.CharField(max_length=64, unique=True)
    ref = models.CharField(max_length=16, unique=True)
    title = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=Source.choices)
    host = models.CharField(max_length=100)
    cwd = models.CharField(max_length=1024, blank=True)
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.UNKNOWN
    )
    active_turn_id = models.CharField(max_length=64, blank=True)
    latest_turn_id = models.CharField(max_length=64, blank=True)
    latest_turn_status = models.CharField(max_length=32, blank=True)
    latest_error = models.TextField(blank=True)
    latest_error_at = models.DateTimeField(null=True, blank=True)
    # A failed or user-interrupted turn holds the queue until a turn succeeds.
    queue_held = models.BooleanField(default=False)
    # Turn-start defaults reused by every later send, queue and interject.
    runtime_settings = models.JSONField(default=dict, blank=True)
    model_provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    goal = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_event_at = models.DateTimeField(null=True, blank=True)

    objects = LaneQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Handles are selectors: two lanes may never answer to one.
            models.UniqueConstraint(fields=["title"], name="lane_title_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.ref} @{self.title}"

    def writable(self, policy: Policy) -> bool:
        """Owned lanes always; attached ones only when the operator allows it."""
        return self.source == self.Source.OWN or policy.allow_attached_writes

    @property
    def handle(self) -> str:
        return f"@{self.title}"

    @property
    def group_name(self) -> str:
        return f"lane.{self.thread_id}"

    @property
    def latest_turn(self) -> dict[str, Any] | None:
        if not self.latest_turn_id:
            return None
        return {
            "id": self.latest_turn_id,
            "status": self.latest_turn_status or None,
            "error": self.latest_error or None,
            "error_at": self.latest_error_at.isoformat()
            if self.latest_error_at
            else None,
        }


class LaneEvent(models.Model):
    """Every app-server notification and server request, in arrival order."""

    thread_id = models.CharField(max_length=64)
    seq = models.PositiveBigIntegerField()
    method = models.CharField(max_length=100)
    params = models.JSONField(default=dict)
    turn_id = models.CharField(max_length=64, blank=True)
    item_id = models.CharField(max_length=128, blank=True)
    request_id = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["thread_id", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread_id", "seq"], name="lane_event_seq_unique"
            ),
        ]
        indexes = [
            # "has the journal seen this turn?" after every turn/start
            models.Index(fields=["thread_id", "turn_id"], name="lane_event_turn"),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id}#{self.seq} {self.method}"

    def as_frame(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "seq": self.seq,
            "method": self.method,
            "params": self.params,
            "request_id": self.request_id,
            "turn_id": self.turn_id or None,
            "item_id": self.item_id or None,
            "received_at": self.received_at.isoformat(),
        }


class QueuedMessage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        ERROR = "error"

    lane = models.ForeignKey(Lane, on_delete=models.CASCADE, related_name="queue")
    text = models.TextField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    # Sent as turn/start clientUserMessageId, so a restart can tell whether
    # a message in flight reached the thread before re-sending it.
    client_message_id = models.UUIDField(default=uuid.uuid4, unique=True)
    turn_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # At most one message per lane is in flight at a time.
            models.UniqueConstraint(
                fields=["lane"],
                condition=models.Q(status="sending"),
                name="queued_message_one_sending_per_lane",
            ),
        ]

    def __str__(self) -> str:
        return f"queued #{self.pk} ({self.status})"


class AuditQuerySet(models.QuerySet["AuditEntry"]):
    def record(
        self,
        *,
        op: str,
        origin: Origin,
        lane: Lane | str | None = None,
        outcome: str = "ok",
        detail: str = "",
    ) -> AuditEntry:
        """One row of the audit log, attributed to where the change came from."""
        return self.create(
            op=op,
            lane=lane.ref if isinstance(lane, Lane) else (lane or ""),
            outcome=outcome,
            detail=detail[:500],
            surface=origin.surface,
            actor=origin.actor[:200],
            trigger_id=origin.trigger_id,
        )


class AuditEntry(models.Model):
    ts = models.DateTimeField(default=timezone.now)
    op = models.CharField(max_length=64)
    lane = models.CharField(max_length=64, blank=True)
    trigger_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=64, default="ok")
    detail = models.TextField(blank=True)
    surface = models.CharField(max_length=16, blank=True)
    # Who, not only which door: "token:<name>", "admin:<user>", the OS user
    # of a local CLI, "worker".
    actor = models.CharField(max_length=200, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.op} {self.outcome}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts.isoformat(),
            "op": self.op,
            "lane": self.lane or None,
            "trigger_id": self.trigger_id or None,
            "surface": self.surface or None,
            "actor": self.actor or None,
            "outcome": self.outcome,
            "detail": self.detail,
        }


class ApiToken(models.Model):
    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Scopes (checked in lanes.tokens.TokenScope): read ops only, and/or only
    # these lanes' thread ids (null: every lane), until expires_at.
    read_only = models.BooleanField(default=False)
    lane_ids = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True)
                | models.Q(expires_at__gt=models.F("created_at")),
                name="apitoken_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ServerRequest(models.Model):
    """A question the app-server asked (approval etc.) and how it was answered.

    A held approval stays `pending` until one writer moves it on, by a
    conditional UPDATE from pending: `dispatch request respond`, the
    worker's timeout, or the worker noticing its app-server connection died
    (`expired`). Whoever wins that UPDATE decides the one answer sent.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        RESPONDED = "responded"
        FAILED = "failed"
        EXPIRED = "expired"

    thread_id = models.CharField(max_length=64, blank=True)
    request_id = models.JSONField()
    method = models.CharField(max_length=100)
    params = models.JSONField(default=dict)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING
    )
    response = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Held for a person (`[policy] approvals = "hold"`), not answered by policy.
    held = models.BooleanField(default=False)
    host = models.CharField(max_length=100, blank=True)
    # The worker's app-server connection that asked; a request outlives
    # neither, so rows of an older connection can never be answered.
    connection = models.CharField(max_length=64, blank=True)
    # accept | decline | cancel, whatever the method's own wording.
    decision = models.CharField(max_length=16, blank=True)
    # Who answered: "policy", "timeout", or the responder's surface/actor.
    answered_by = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "held"], name="server_request_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.method} ({self.state})"


class LaneGoal(models.Model):
    """One goal a lane has had, from creation until it was cleared or replaced.

    Objective, status, budget and usage follow the app-server's goal objects
    (thread/goal/updated, or the answer to thread/goal/set); `set_by` and
    `cleared_by` name who did it through dispatch ("" when Codex itself did:
    the model's create_goal tool, or another client).
    """

    lane = models.ForeignKey(Lane, on_delete=models.CASCADE, related_name="goals")
    objective = models.TextField()
    status = models.CharField(max_length=32, blank=True)
    token_budget = models.BigIntegerField(null=True, blank=True)
    tokens_used = models.BigIntegerField(null=True, blank=True)
    time_used_seconds = models.BigIntegerField(null=True, blank=True)
    # The goal's createdAt (unix seconds) as Codex reports it.
    codex_created_at = models.BigIntegerField(null=True, blank=True)
    set_by = models.CharField(max_length=200, blank=True)
    cleared_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["lane", "id"]
        constraints = [
            # A lane has at most one current goal; a new one ends the old.
            models.UniqueConstraint(
                fields=["lane"],
                condition=models.Q(cleared_at__isnull=True),
                name="lane_goal_one_current",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lane_id}: {self.objective[:60]} ({self.status})"


class ModelCatalogEntry(models.Model):
    provider = models.CharField(max_length=100)
    model_id = models.CharField(max_length=200)
    data = models.JSONField(default=dict)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model_id"], name="model_catalog_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model_id}"


class WorkerLease(models.Model):
    """Heartbeat of the one worker per host that owns an app-server."""

    host = models.CharField(max_length=100, unique=True)
    pid = models.IntegerField()
    # Where `pid` means that process (lanes.worker.lease.machine_identity):
    # only there can a dead holder be told from a slow one.
    machine = models.CharField(max_length=200, blank=True, default="")
    app_server_pid = models.IntegerField(null=True, blank=True)
    app_server_version = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"worker {self.host} (pid {self.pid} on {self.machine or '?'})"

    def is_fresh(self, *, seconds: float = 15.0) -> bool:
        return (timezone.now() - self.heartbeat_at).total_seconds() < seconds


from lanes.models.index import LaneItem, LaneSyncState, LaneTurn  # noqa: E402,F401
