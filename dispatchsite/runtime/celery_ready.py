"""The celery child's readiness file, written once celery's worker is ready.

The supervisor starts celery with `--include dispatchsite.runtime.celery_ready`,
so this module (and not the supervisor) is what the celery worker imports.
worker_ready fires only once the broker connection is up; merely being alive
is not enough because a bad broker URL fails a few seconds into startup.
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_ready
from django.conf import settings

from dispatchsite.runtime import home


def _mark_celery_ready(sender: Any = None, **kwargs: Any) -> None:
    home.write_json_atomic(
        home.celery_state_file(settings.DISPATCH_HOST),
        {"pid": os.getpid(), "ready_at": home.now_iso()},
    )


def _connect_celery_ready() -> None:
    # Connecting in a process other than the celery child is harmless since
    # worker_ready never fires there.
    worker_ready.connect(
        _mark_celery_ready, weak=False, dispatch_uid="dispatch-celery-ready"
    )


_connect_celery_ready()
