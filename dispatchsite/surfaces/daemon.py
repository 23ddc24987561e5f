"""Where the local daemon is and which token to present to it.

One home for the clients of a running daemon (`dispatch mcp`, `dispatch
watch --follow`): $DISPATCH_URL, else the URL the supervisor recorded;
$DISPATCH_TOKEN, else a local token bootstrapped once through the ORM.
And the thin `dispatch` client's own token (run/cli-token), whose calls
REST runs as the in-process CLI's (is_cli_token).
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError

from dispatchsite.core.errors import DispatchError
from dispatchsite.runtime import home

if TYPE_CHECKING:
    from lanes.models import ApiToken

TOKEN_NAME = "mcp-local"
TOKEN_FILE = "mcp-token"
# The thin CLI's token (dispatchsite.thin.client reads it).
CLI_TOKEN_FILE = "cli-token"

# The fix whenever no daemon answers, shared by every client of it.
UP_FIX = "run `dispatch up` (or point DISPATCH_URL at a running dispatch)"


def local_base_url() -> str | None:
    """$DISPATCH_URL, else the URL the local supervisor recorded."""
    url = os.environ.get("DISPATCH_URL")
    if url:
        return url
    state = home.read_json(home.state_file())
    value = state.get("url") if state else None
    return value if isinstance(value, str) and value else None


def token_file() -> Path:
    return home.run_dir() / TOKEN_FILE


def _read_token(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return value or None


def _local_db_ready() -> bool:
    # Opening a missing SQLite file would create an empty database as a side
    # effect; only bootstrap against one that `dispatch up` already made.
    db = settings.DATABASES["default"]
    if "sqlite3" in db["ENGINE"]:
        return Path(str(db["NAME"])).is_file()
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def resolve_token(rejected: str | None = None) -> str | None:
    """$DISPATCH_TOKEN, else run/mcp-token, else a new local token.

    The bootstrap makes the plugin work with no set-up on the machine that
    runs dispatch: the first `dispatch mcp` that can open the local registry
    creates an ApiToken named "mcp-local" and keeps its raw value in
    run/mcp-token (0600, inside the 0700 run directory). `rejected` is a
    token the API just refused (revoked, or from a reset registry): it is
    replaced rather than returned again. Against a remote dispatch, set
    DISPATCH_TOKEN instead.
    """
    token = os.environ.get("DISPATCH_TOKEN")
    if token:
        return token
    return _local_token(token_file(), rejected, cli=False)


def resolve_cli_token(rejected: str | None = None) -> str | None:
    """run/cli-token, else a new one: the thin `dispatch` client's token.

    REST runs a call made with it as the in-process CLI runs it (surface
    "cli", the daemon's OS user: lanes.tokens.token_is_cli). The file is
    0600 in the 0700 run directory, so only that user can present it; never
    $DISPATCH_TOKEN, which may be anybody's.
    """
    return _local_token(home.run_dir() / CLI_TOKEN_FILE, rejected, cli=True)


def is_cli_token(token: ApiToken) -> bool:
    """Whether REST runs `token`'s calls as the local CLI's: the reserved
    name with full scope, and the very value kept in run/cli-token, which
    only the OS user the daemon runs as can read."""
    from lanes.tokens import token_hash, token_is_cli

    if not token_is_cli(token):
        return False
    raw = _read_token(home.run_dir() / CLI_TOKEN_FILE)
    return raw is not None and hmac.compare_digest(token_hash(raw), token.token_hash)


def _local_token(path: Path, rejected: str | None, *, cli: bool) -> str | None:
    filename = path.name
    token = _read_token(path)
    if (token and token != rejected) or not path.parent.is_dir():
        return token
    if not _local_db_ready():
        return None
    try:
        # Models need the app registry: import only once a bootstrap is due.
        from lanes.tokens import CLI_TOKEN_NAME, api_token_create, api_token_revoke
    except ImportError:
        return None
    name = CLI_TOKEN_NAME if cli else TOKEN_NAME
    # Several clients (one MCP server per Codex session, parallel CLI calls)
    # may start at once; one token is enough for all of them.
    with _file_lock(path.with_name(filename + ".lock")):
        token = _read_token(path)
        if token and token != rejected:
            return token
        try:
            try:
                _, raw = api_token_create(name=name, cli=cli)
            except DispatchError:
                # The name is held by a token whose raw value is lost (the
                # file was deleted or refused): nobody can present it, so
                # replace it.
                api_token_revoke(name=name)
                _, raw = api_token_create(name=name, cli=cli)
        except (DatabaseError, DispatchError):
            return None
        tmp = path.with_name(f".{filename}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(raw + "\n")
        os.replace(tmp, path)
        return raw


class CachedToken:
    """The session's token: resolved when first needed, renewed when refused."""

    def __init__(
        self, resolve: Callable[[str | None], str | None] = resolve_token
    ) -> None:
        self._resolve = resolve
        self._token: str | None = None

    def __call__(self) -> str | None:
        if self._token is None:
            self._token = self._resolve(None)
        return self._token

    def refused(self, token: str) -> str | None:
        """The API answered 401 to `token`: a replacement, or None."""
        if token == self._token:
            self._token = self._resolve(token)
        return self._token if self._token != token else None
