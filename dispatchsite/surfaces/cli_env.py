"""The environment knobs an op reads in the process that runs it.

Stdlib only: the thin client (dispatchsite.thin) imports it too.

In process they are the caller's; over REST, the daemon's. The daemon puts
a digest of its values in the CLI snapshot, and the thin client runs a call
over REST only when its own digest is the same: a caller that sets one of
them for a call (`DISPATCH_ALLOW_ATTACHED_WRITES=1 dispatch send ...`) gets
the in-process path, where it applies. Values are hashed, never sent:
DATABASE_URL may hold a password.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

KNOBS = (
    # dispatchsite.core.config.load_policy
    "DISPATCH_ALLOW_ATTACHED_WRITES",
    # how long a call waits on the worker (settings.DISPATCH_RPC_TIMEOUT)
    "DISPATCH_RPC_TIMEOUT",
    # which database the call reads and writes
    "DATABASE_URL",
    # workspaces.worktrees.worktree_root (`new --dry-run` plans with it)
    "DISPATCH_WORKTREE_ROOT",
)


def env_digest(environ: Mapping[str, str]) -> str:
    values = {name: environ.get(name, "") for name in KNOBS}
    text = json.dumps(values, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
