"""`dispatch journal compact`: journal upkeep on demand (celery beat runs it too)."""

from __future__ import annotations

import argparse
from typing import Any

from dispatchsite.core.commands import register_command


def configure_compact(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than",
        type=int,
        default=None,
        metavar="SECONDS",
        help="compact deltas older than this "
        "(default: DISPATCH_DELTA_COMPACT_AFTER_SECONDS)",
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        default=None,
        metavar="DAYS",
        help="prune events older than this "
        "(default: DISPATCH_EVENT_RETENTION_DAYS; 0 = keep all)",
    )
    parser.add_argument(
        "--no-prune", action="store_true", help="only compact deltas, prune nothing"
    )


@register_command(
    "journal compact",
    help="drop streaming deltas of completed items and prune events past retention",
    configure=configure_compact,
)
def journal_compact_command(args: argparse.Namespace) -> dict[str, Any]:
    from django.utils import timezone

    from dispatchsite.core.errors import ValidationError
    from lanes.journal.retention import journal_maintain_run

    for name in ("older_than", "retention_days"):
        value = getattr(args, name)
        if value is not None and value < 0:
            flag = "--" + name.replace("_", "-")
            raise ValidationError(f"{flag} must be >= 0", hint=f"pass {flag} 0 or more")
    return journal_maintain_run(
        now=timezone.now(),
        older_than_seconds=args.older_than,
        retention_days=args.retention_days,
        prune=not args.no_prune,
    )
