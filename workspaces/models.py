"""Launch records: packets, what each lane was launched with, workspaces, worktrees."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from lanes.models import Lane


class PacketQuerySet(models.QuerySet["Packet"]):
    def saved(self, spelling: str) -> Packet | None:
        """The saved packet `NAME` (newest version) or `NAME@vN`, if any."""
        name, _, version = spelling.partition("@v")
        found = self.exclude(name="").filter(name=name)
        if version:
            # Anything but a plain small number names no version.
            if not (version.isdigit() and len(version) <= 9):
                return None
            found = found.filter(version=int(version))
        return found.order_by("-version").first()


class Packet(models.Model):
    """One version of a packet: a saved one (named) or one launched from a folder.

    Saved packets never change: editing one makes the next version, so a lane
    keeps exactly the files it ran with.
    """

    name = models.CharField(max_length=200, blank=True)
    version = models.PositiveIntegerField(default=1)
    source_dir = models.CharField(max_length=1024, blank=True)
    unknown_files = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = PacketQuerySet.as_manager()

    class Meta:
        ordering = ["name", "-version", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"],
                condition=~Q(name=""),
                name="packet_name_version_unique",
            ),
        ]

    def __str__(self) -> str:
        if self.name:
            return f"{self.name} v{self.version}"
        return f"packet #{self.pk} ({self.source_dir})"


class PacketFile(models.Model):
    class Slot(models.TextChoices):
        GOAL = "goal"
        PROMPT = "prompt"
        OUTPUT_SCHEMA = "output_schema"
        BASE = "base"
        DEVELOPER = "developer"
        CONFIG = "config"
        HOOKS = "hooks"
        CODEX = "codex"

    packet = models.ForeignKey(Packet, on_delete=models.CASCADE, related_name="files")
    slot = models.CharField(max_length=32, choices=Slot.choices)
    path = models.CharField(max_length=1024)
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    text = models.TextField(blank=True)

    class Meta:
        ordering = ["packet", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["packet", "path"], name="packet_file_path_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.path} ({self.slot})"


class LaneLaunch(models.Model):
    """What a lane was launched with: the packet version and every source."""

    lane = models.OneToOneField(Lane, on_delete=models.CASCADE, related_name="launch")
    packet = models.ForeignKey(
        Packet, null=True, blank=True, on_delete=models.PROTECT, related_name="lanes"
    )
    sources = models.JSONField(default=list, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    # Kept here (and in the lane's runtime settings) to check each turn's output.
    output_schema = models.JSONField(null=True, blank=True)
    staged = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"launch of {self.lane}"


class Workspace(models.Model):
    """The environment discovered for a launch, and its setup run if any."""

    lane = models.OneToOneField(
        Lane, null=True, blank=True, on_delete=models.CASCADE, related_name="workspace"
    )
    mode = models.CharField(max_length=100)
    state = models.CharField(max_length=32)
    repo_root = models.CharField(max_length=1024, blank=True)
    effective_cwd = models.CharField(max_length=1024, blank=True)
    environment_file = models.CharField(max_length=1024, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    setup = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.mode}: {self.state} ({self.effective_cwd})"


class Worktree(models.Model):
    """A git worktree dispatch made for a lane; removed by `workspace clean`."""

    lane = models.OneToOneField(
        Lane, null=True, blank=True, on_delete=models.SET_NULL, related_name="worktree"
    )
    path = models.CharField(max_length=1024)
    branch = models.CharField(max_length=255)
    base = models.CharField(max_length=255)
    head = models.CharField(max_length=64, blank=True)
    source_repo = models.CharField(max_length=1024)
    created_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["path"],
                condition=Q(removed_at__isnull=True),
                name="worktree_live_path_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.path} ({self.branch})"


class TurnOutputCheck(models.Model):
    """Whether a completed turn's final message matched the launch's schema."""

    lane = models.ForeignKey(
        Lane, on_delete=models.CASCADE, related_name="output_checks"
    )
    turn_id = models.CharField(max_length=64)
    output_valid = models.BooleanField()
    error = models.TextField(blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["lane", "checked_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lane", "turn_id"], name="turn_output_check_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.turn_id}: {'valid' if self.output_valid else 'invalid'}"
