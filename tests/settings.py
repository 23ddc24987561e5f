"""Test settings: never the user's ~/.dispatch or ~/.codex."""

from __future__ import annotations

import os
import tempfile

# Set before dispatchsite.settings reads them; subprocesses that tests start
# get their own DISPATCH_HOME and CODEX_HOME explicitly.
_root = tempfile.mkdtemp(prefix="dispatch-tests-")
os.environ.setdefault("DISPATCH_HOME", os.path.join(_root, "dispatch-home"))
os.environ.setdefault("CODEX_HOME", os.path.join(_root, "codex-home"))
os.environ.setdefault("DISPATCH_HOST", "testhost")

from dispatchsite.settings import *  # noqa: E402,F403

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
# Django's test client sends Host: testserver.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405
