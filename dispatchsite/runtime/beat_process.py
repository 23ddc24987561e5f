"""celery beat as `up --no-embedded --beat` runs it: celery's own command line
plus a readiness file written from beat_init, which the supervisor probes
(`celery beat` has no `--include` to load celery_ready.py by itself)."""

from __future__ import annotations

import os
import sys
from typing import Any

from celery.signals import beat_init


def _mark_beat_ready(sender: Any = None, **kwargs: Any) -> None:
    # Settings are only importable once celery loaded the Django app.
    from django.conf import settings

    from dispatchsite.runtime import home

    home.write_json_atomic(
        home.beat_state_file(settings.DISPATCH_HOST),
        {"pid": os.getpid(), "ready_at": home.now_iso()},
    )


def main() -> int:
    from celery.bin.celery import main as celery_main

    beat_init.connect(_mark_beat_ready, weak=False, dispatch_uid="dispatch-beat-ready")
    return int(celery_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
