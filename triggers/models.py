"""Triggers: when -> action -> lane, and the ledger of every firing."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from lanes.models import Lane


def new_trigger_id() -> str:
    return uuid.uuid4().hex[:8]


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


KINDS = [
    "interval",
    "cron",
    "idle_for",
    "turn_completed",
    "approval_pending",
    "webhook",
]
ACTIONS = ["send", "steer", "queue", "context", "interject"]


class Trigger(models.Model):
    class Kind(models.TextChoices):
        INTERVAL = "interval"
        CRON = "cron"
        IDLE_FOR = "idle_for"
        TURN_COMPLETED = "turn_completed"
        APPROVAL_PENDING = "approval_pending"
        WEBHOOK = "webhook"

    class Action(models.TextChoices):
        SEND = "send"
        STEER = "steer"
        QUEUE = "queue"
        CONTEXT = "context"
        INTERJECT = "interject"

    class CatchUp(models.TextChoices):
        ONCE = "once"
        SKIP = "skip"

    id = models.CharField(primary_key=True, max_length=16, default=new_trigger_id)
    name = models.CharField(max_length=200, unique=True)
    # Resolved from the selector once, at creation: a rename keeps the binding.
    lane = models.ForeignKey(Lane, on_delete=models.CASCADE, related_name="triggers")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    seconds = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=200, blank=True)
    tz = models.CharField(max_length=64, default="UTC")
    # Event kinds: the lane whose events are watched (default: the target).
    on_lane = models.ForeignKey(
        Lane,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="watching_triggers",
    )
    turn_status = models.CharField(max_length=16, default="completed")
    action = models.CharField(max_length=16, choices=Action.choices)
    text = models.TextField()
    idle_only = models.BooleanField(default=False)
    min_interval = models.PositiveIntegerField(null=True, blank=True)
    dedupe = models.BooleanField(default=False)
    max_firings = models.PositiveIntegerField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    catch_up = models.CharField(
        max_length=8, choices=CatchUp.choices, default=CatchUp.ONCE
    )
    max_failures = models.PositiveIntegerField(default=5)
    max_chain = models.PositiveIntegerField(default=3)
    # HMAC key of webhook triggers; HMAC needs the key itself, not a hash.
    secret = models.CharField(max_length=80, blank=True)
    enabled = models.BooleanField(default=True)
    paused_reason = models.TextField(blank=True)
    # Time kinds: the next slot not yet claimed.
    next_due_at = models.DateTimeField(null=True, blank=True)
    fired_count = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, blank=True)
    # What --dedupe compares with; in the DB so a restart keeps it.
    last_delivered_text = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The tick reads only enabled triggers that are due.
            models.Index(fields=["enabled", "next_due_at"], name="trigger_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=KINDS), name="trigger_kind_known"
            ),
            models.CheckConstraint(
                condition=Q(action__in=ACTIONS),
                name="trigger_action_known",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["interval", "idle_for"]) | Q(seconds__gte=1),
                name="trigger_seconds_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind="cron") | ~Q(cron=""), name="trigger_cron_given"
            ),
            models.CheckConstraint(
                condition=Q(max_failures__gte=1), name="trigger_max_failures_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind="webhook") | ~Q(secret=""),
                name="trigger_webhook_secret",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.name} ({self.kind})"


class TriggerFiring(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        FIRED = "fired"
        SKIPPED = "skipped"
        FAILED = "failed"

    class Reason(models.TextChoices):
        TIME = "time"
        CATCH_UP = "catch_up"
        EVENT = "event"
        WEBHOOK = "webhook"
        MANUAL = "manual"

    trigger = models.ForeignKey(
        Trigger, on_delete=models.CASCADE, related_name="firings"
    )
    # The slot's identity: a schedule time, a journal event, a webhook's
    # Idempotency-Key. Unique per trigger: a slot fires at most once.
    slot_key = models.CharField(max_length=128)
    slot_at = models.DateTimeField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.PENDING
    )
    # The guard that skipped, the error that failed, or what was delivered.
    detail = models.TextField(blank=True)
    text = models.TextField(blank=True)
    turn_id = models.CharField(max_length=64, blank=True)
    queued_message_id = models.BigIntegerField(null=True, blank=True)
    # Event or webhook data the text's placeholders may use.
    context = models.JSONField(default=dict, blank=True)
    # How many firings in a row reacted to a turn of this trigger's own making.
    chain = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "slot_key"], name="trigger_firing_slot_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["outcome", "slot_at"], name="trigger_firing_outcome"),
        ]

    def __str__(self) -> str:
        return f"firing {self.pk} of {self.trigger_id} ({self.outcome})"

    def as_dict(self) -> dict[str, Any]:
        lateness = None
        if self.started_at is not None and self.reason == self.Reason.TIME:
            lateness = round((self.started_at - self.slot_at).total_seconds(), 3)
        return {
            "id": self.pk,
            "trigger_id": self.trigger_id,
            "slot": self.slot_key,
            "slot_at": self.slot_at.isoformat(),
            "reason": self.reason,
            "outcome": self.outcome,
            "detail": self.detail,
            "text": self.text,
            "turn_id": self.turn_id or None,
            "queued_message_id": self.queued_message_id,
            "chain": self.chain,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "lateness_s": lateness,
        }
