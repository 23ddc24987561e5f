"""The item index: turns and items of every lane, for history and search.

Filled live from the journal (lanes/journal/indexing.py, inside the journal's
transaction) and from `dispatch sync` (lanes/history/sync.py). Rows are keyed by
thread id, like LaneEvent, so a thread's items can be indexed before (or
without) a lane row. Full-text search is a SQLite FTS5 table over
`LaneItem.text` kept in sync by triggers (a GIN tsvector index on Postgres);
both are created in the migration, not here.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from django.db.models.signals import post_migrate
from django.utils import timezone

# Item text is what search sees and history shows; whole tool outputs live in
# the journal (and in Codex). Head and tail are kept when an item is longer.
ITEM_TEXT_MAX_CHARS = 16_384
ITEM_ID_MAX = 128


class LaneTurnQuerySet(models.QuerySet["LaneTurn"]):
    def of_thread(self, thread_id: str) -> LaneTurnQuerySet:
        return self.filter(thread_id=thread_id)


class LaneTurn(models.Model):
    thread_id = models.CharField(max_length=64)
    turn_id = models.CharField(max_length=64)
    # Codex's words: inProgress | completed | interrupted | failed.
    status = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    # The journal saw the turn start and finish. It writes in order, so then
    # every item of the turn reached the live index and sync can skip it.
    live_started = models.BooleanField(default=False)
    live_completed = models.BooleanField(default=False)
    # When sync last fetched all items of this (then finished) turn.
    items_synced_at = models.DateTimeField(null=True, blank=True)

    objects = LaneTurnQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["thread_id", "turn_id"], name="lane_turn_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["thread_id", "started_at"], name="lane_turn_started"),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id}/{self.turn_id}"

    @property
    def finished(self) -> bool:
        return bool(self.status) and self.status != "inProgress"

    @property
    def settled(self) -> bool:
        """Finished, and every item of it is in the index."""
        live = self.live_started and self.live_completed
        return self.finished and (live or self.items_synced_at is not None)


class LaneItemQuerySet(models.QuerySet["LaneItem"]):
    def of_thread(self, thread_id: str) -> LaneItemQuerySet:
        return self.filter(thread_id=thread_id)

    def chronological(self) -> LaneItemQuerySet:
        return self.order_by("created_at", "id")


class LaneItem(models.Model):
    class Source(models.TextChoices):
        LIVE = "live"
        SYNC = "sync"

    thread_id = models.CharField(max_length=64)
    turn_id = models.CharField(max_length=64, blank=True)
    item_id = models.CharField(max_length=ITEM_ID_MAX)
    item_type = models.CharField(max_length=64)
    # user | assistant | tool | "" (e.g. context compaction)
    role = models.CharField(max_length=16, blank=True)
    tool = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=32, blank=True)
    text = models.TextField(blank=True)
    files = models.JSONField(default=list, blank=True)
    # The raw Codex item, or a stub saying it was too large to keep.
    payload = models.JSONField(null=True, blank=True)
    # Compact JSON size of the whole item: transcript bytes, token estimates.
    bytes = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=8, choices=Source.choices)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = LaneItemQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["thread_id", "item_id"], name="lane_item_unique"
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("text"), ITEM_TEXT_MAX_CHARS),
                name="lane_item_text_bounded",
            ),
            models.CheckConstraint(
                condition=models.Q(source__in=["live", "sync"]),
                name="lane_item_source_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["thread_id", "created_at"], name="lane_item_time"),
            models.Index(fields=["created_at"], name="lane_item_created"),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id}/{self.item_id}"

    def as_history_item(self, *, raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "turn_id": self.turn_id or None,
            "item_id": self.item_id,
            "type": self.item_type,
            "text": self.text,
            "role": self.role or None,
            "tool": self.tool or None,
            "status": self.status or None,
            "files": self.files or [],
            "bytes": self.bytes,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat()
            if self.completed_at
            else None,
        }
        if raw:
            out["raw"] = self.payload
        return out


class LaneSyncState(models.Model):
    """Where `dispatch sync` stands for one thread; cursors survive restarts.

    A sync pass walks turns newest first and fetches the items of every turn
    that is not settled yet. It ends at `head_turn_id` (the newest turn of
    the settled block that reaches the thread's first turn) or at the first
    turn. A pass cut short by a budget keeps its cursor so the next sync
    resumes it before starting a new one.
    """

    class State(models.TextChoices):
        UNKNOWN = "unknown"
        PARTIAL = "partial"
        COMPLETE = "complete"
        ERROR = "error"

    class Capability(models.TextChoices):
        UNKNOWN = "unknown"
        SUPPORTED = "supported"
        TURN_PAGE_FALLBACK = "turn-page-fallback"
        UNSUPPORTED = "unsupported"

    thread_id = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, default=State.UNKNOWN)
    capability = models.CharField(max_length=24, default=Capability.UNKNOWN)
    head_turn_id = models.CharField(max_length=64, blank=True)
    history_complete = models.BooleanField(default=False)
    resume_active = models.BooleanField(default=False)
    resume_cursor = models.TextField(blank=True)
    resume_top_turn_id = models.CharField(max_length=64, blank=True)
    # A resumed `--full` pass keeps refetching settled turns.
    resume_full = models.BooleanField(default=False)
    # Inside the turn the pass stopped in: its items page cursor, so a turn
    # with more items than one sync's budget still completes over syncs.
    item_turn_id = models.CharField(max_length=64, blank=True)
    item_cursor = models.TextField(blank=True)
    # A sync in progress holds this lease so two never interleave cursors.
    running_until = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Figures of the last run.
    pages_scanned = models.PositiveIntegerField(default=0)
    turns_indexed = models.PositiveIntegerField(default=0)
    items_indexed = models.PositiveIntegerField(default=0)
    unchanged_skipped = models.PositiveIntegerField(default=0)
    scanned_bytes = models.PositiveBigIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    state__in=["unknown", "partial", "complete", "error"]
                ),
                name="lane_sync_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    capability__in=[
                        "unknown",
                        "supported",
                        "turn-page-fallback",
                        "unsupported",
                    ]
                ),
                name="lane_sync_capability_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"sync {self.thread_id}: {self.state}"


# -- full-text index upkeep ------------------------------------------------------

# The FTS5 table and triggers of migration 0002. SQLite migrations that
# rebuild lanes_laneitem (most AlterField/RemoveField) drop its triggers, so
# after every migrate they are recreated and, if any were missing, the FTS
# table is rebuilt from the items.
FTS_TABLE = "lanes_laneitem_fts"
FTS_TRIGGERS = {
    "lanes_laneitem_fts_ai": (
        "CREATE TRIGGER IF NOT EXISTS lanes_laneitem_fts_ai AFTER INSERT ON "
        "lanes_laneitem BEGIN INSERT INTO lanes_laneitem_fts(rowid, text) "
        "VALUES (new.id, new.text); END"
    ),
    "lanes_laneitem_fts_ad": (
        "CREATE TRIGGER IF NOT EXISTS lanes_laneitem_fts_ad AFTER DELETE ON "
        "lanes_laneitem BEGIN INSERT INTO lanes_laneitem_fts(lanes_laneitem_fts, "
        "rowid, text) VALUES ('delete', old.id, old.text); END"
    ),
    "lanes_laneitem_fts_au": (
        "CREATE TRIGGER IF NOT EXISTS lanes_laneitem_fts_au AFTER UPDATE OF text ON "
        "lanes_laneitem BEGIN INSERT INTO lanes_laneitem_fts(lanes_laneitem_fts, "
        "rowid, text) VALUES ('delete', old.id, old.text); INSERT INTO "
        "lanes_laneitem_fts(rowid, text) VALUES (new.id, new.text); END"
    ),
}


def fts_ensure(*, using: str = "default") -> bool:
    """Recreate missing FTS triggers (and rebuild the index); True if repaired."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE name = %s OR name IN (%s, %s, %s)",
            [FTS_TABLE, *FTS_TRIGGERS],
        )
        present = {row[0] for row in cursor.fetchall()}
        if FTS_TABLE not in present or set(FTS_TRIGGERS) <= present:
            return False
        for statement in FTS_TRIGGERS.values():
            cursor.execute(statement)
        cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
    return True


def fts_ensure_after_migrate(
    sender: Any, using: str = "default", **kwargs: Any
) -> None:
    if getattr(sender, "name", "") == "lanes":
        fts_ensure(using=using)


post_migrate.connect(fts_ensure_after_migrate, dispatch_uid="lanes.fts_ensure")
