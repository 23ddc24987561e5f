"""Run `dispatch <verb>` against the running daemon, without Django.

Where: the URL `dispatch up` recorded in run/supervisor.json (this home's
own daemon, whose database the in-process CLI would read). Token:
run/cli-token (0600; the in-process CLI creates it when it is missing, see
dispatchsite.cli and dispatchsite.surfaces.daemon.resolve_cli_token). REST
runs that token's calls as the in-process CLI's: surface "cli", the OS user
as actor, so reads and writes answer and audit the same. $DISPATCH_URL and
$DISPATCH_TOKEN are for clients of another dispatch and are not used here.
The snapshot is cached in run/cli-snapshot.json (0600) and sent back by
hash with each call; the daemon answers 412 when its registry differs, and
the client fetches the new snapshot and parses again.

Output and errors are written exactly as the in-process CLI writes them:
the REST error body is the same `error.as_dict()`, and a result is the
same JSON re-indented. Anything else returns a `Declined` and the caller
runs the verb in process; never once a write has been sent (it may have
run), except when the daemon refused it unrun (401, 412).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.surfaces.cli_env import env_digest
from dispatchsite.surfaces.formatting import output_format, table_text
from dispatchsite.thin import docs
from dispatchsite.thin.docs import DOCS_FILE, read_docs
from dispatchsite.thin.inputs import Kept, confirm_destroy, file_params
from dispatchsite.thin.parser import (
    CliUsageError,
    Fallback,
    branch_thin,
    build_parser,
    resolve,
    thin_argv,
)

SNAPSHOT_FILE = "cli-snapshot.json"
SNAPSHOT_FORMAT = 2
TOKEN_FILE = "cli-token"
SNAPSHOT_HEADER = "X-Dispatch-Cli-Snapshot"
CALLER_HEADER = "X-Dispatch-Caller-Thread-Id"
CONNECT_TIMEOUT_S = 2.0
# Surface commands answered from the snapshot's docs.
DOC_COMMANDS = {"schema", "completion"}


@dataclass(frozen=True)
class Declined:
    """Run in process instead; `token_wanted` when the daemon is known but
    no usable token is (`refused` is one it answered 401 to)."""

    reason: str
    token_wanted: bool = False
    refused: str | None = None


def run_dir() -> Path:
    raw = os.environ.get("DISPATCH_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".dispatch"
    return (home if home.is_absolute() else Path.cwd() / home) / "run"


def base_url(run: Path) -> str | None:
    """The URL the local supervisor recorded. Not $DISPATCH_URL: the
    in-process CLI reads this home's database, and so must its stand-in."""
    try:
        state = json.loads((run / "supervisor.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = state.get("url") if isinstance(state, dict) else None
    return value if isinstance(value, str) and value else None


class NotSent(OSError):
    """No connection: the daemon never saw the request."""


def local_token(run: Path) -> str | None:
    """The local CLI's token. Not $DISPATCH_TOKEN: another token would be
    audited as itself, and a narrower one would narrow what the in-process
    CLI shows in full."""
    try:
        return (run / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class Daemon:
    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/") + "/api/v1"
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); OSError when nothing answers."""
        connection: http.client.HTTPConnection
        if self.https:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=CONNECT_TIMEOUT_S
            )
        else:
            connection = http.client.HTTPConnection(
                self.host, self.port, timeout=CONNECT_TIMEOUT_S
            )
        try:
            try:
                connection.connect()
            except OSError as exc:
                raise NotSent(str(exc)) from None
            assert connection.sock is not None
            connection.sock.settimeout(None)  # a watch long poll takes its time
            sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
            data = None
            if body is not None:
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
                sent["Content-Type"] = "application/json"
            connection.request(method, self.prefix + path, body=data, headers=sent)
            response = connection.getresponse()
            payload = response.read()
            return response.status, dict(response.getheaders()), payload
        except http.client.HTTPException as exc:
            raise OSError(str(exc)) from None
        finally:
            connection.close()


def read_cache(run: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run / SNAPSHOT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (
        data
        if isinstance(data, dict) and data.get("format") == SNAPSHOT_FORMAT
        else None
    )


def write_cache(run: Path, name: str, data: dict[str, Any]) -> None:
    """Owner-only, replaced atomically (concurrent calls may all write)."""
    tmp = run / f".{name}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
        os.replace(tmp, run / name)
    except OSError:
        return  # the next call fetches it again


def fetch_snapshot(daemon: Daemon, run: Path) -> dict[str, Any] | Declined:
    try:
        status, _headers, body = daemon.request("GET", "/cli-snapshot")
    except OSError:
        return Declined("no daemon answers")
    if status == 401:
        return Declined("token refused", token_wanted=True, refused=daemon.token)
    if status != 200:
        return Declined(f"snapshot: HTTP {status}")
    try:
        snapshot = json.loads(body)
    except ValueError:
        return Declined("snapshot: not JSON")
    if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT:
        return Declined("snapshot: unknown format")
    extra = snapshot.pop("docs", {})
    write_cache(run, DOCS_FILE, {**extra, "hash": snapshot["hash"]})
    write_cache(run, SNAPSHOT_FILE, snapshot)
    return snapshot


def emit(result: Any, fmt: str) -> None:
    """As dispatchsite.surfaces.cli.emit."""
    if result is None:
        return
    table = table_text(result) if fmt == "table" else None
    if table is not None:
        sys.stdout.write(table)
    else:
        sys.stdout.write(
            json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
        )
    sys.stdout.flush()


def emit_error_body(body: dict[str, Any]) -> int:
    sys.stderr.write(json.dumps(body, ensure_ascii=False, default=str) + "\n")
    return int(body["error"]["exit_status"])


def error_body(payload: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("exit_status"), int):
        return body
    return None


def parse(
    snapshot: dict[str, Any], argv: list[str]
) -> tuple[dict[str, Any], dict[str, Any], argparse.Namespace] | Declined | int:
    first = argv[0] if not argv[0].startswith("-") else None
    if first is not None and first not in snapshot["nodes"]:
        first = None  # an unknown command: full usage, as in process
    if not branch_thin(snapshot, first) or not thin_argv(snapshot, argv):
        return Declined("branch not representable")
    parser, nodes = build_parser(snapshot, first)
    try:
        args = parser.parse_args(argv)
        op, params = resolve(snapshot, nodes, args)
    except Fallback as exc:
        if exc.surface in DOC_COMMANDS:
            return {"id": exc.surface, "thin": True, "docs": True}, {}, args
        return Declined(str(exc))
    except CliUsageError as exc:
        error = ValidationError(str(exc), hint="see `dispatch --help`")
        return emit_error_body(error.as_dict())
    except DispatchError as exc:
        return emit_error_body(exc.as_dict())
    if not op["thin"]:
        return Declined(f"{op['id']} runs in process")
    if set(op["local_fields"]) & set(params):
        return Declined("a path relative to the caller")
    return op, params, args


def run(
    argv: list[str], *, retried: bool = False, kept: Kept | None = None
) -> int | Declined:
    """Exit status of `dispatch argv` run over REST, or Declined."""
    if not argv or os.environ.get("DISPATCH_THIN", "1") == "0":
        return Declined("disabled")
    here = run_dir()
    url = base_url(here)
    if url is None:
        return Declined("no daemon")
    token = local_token(here)
    if token is None:
        return Declined("no token", token_wanted=here.is_dir())
    daemon = Daemon(url, token)
    kept = kept or Kept()
    cached = None if retried else read_cache(here)
    snapshot = cached or fetch_snapshot(daemon, here)
    if isinstance(snapshot, Declined):
        kept.give_back()
        return snapshot
    parsed = parse(snapshot, argv)
    if not isinstance(parsed, tuple):
        if isinstance(parsed, Declined):
            kept.give_back()
        return parsed
    op, params, args = parsed
    if op.get("docs"):
        return run_docs(daemon, here, snapshot, op["id"], args)
    if snapshot.get("env") != env_digest(os.environ):
        if cached is not None:
            # Perhaps the daemon restarted with another environment: a
            # cached digest would otherwise keep every call in process.
            return run(argv, retried=True, kept=kept)
        kept.give_back()
        return Declined("this call's environment is not the daemon's")
    try:
        file_params(op, params, kept)
        if op["intent"] == "destroy":
            confirm_destroy(op, args, params, kept)
    except DispatchError as exc:
        return emit_error_body(exc.as_dict())
    outcome = call(daemon, snapshot, op, params, args)
    if isinstance(outcome, Declined):
        if outcome.reason == "stale snapshot" and not retried:
            return run(argv, retried=True, kept=kept)
        kept.give_back()
    return outcome


def call(
    daemon: Daemon,
    snapshot: dict[str, Any],
    op: dict[str, Any],
    params: dict[str, Any],
    args: argparse.Namespace,
) -> int | Declined:
    """POST the op; its exit status, or Declined while it cannot have run."""
    headers = {SNAPSHOT_HEADER: str(snapshot["hash"])}
    caller = os.environ.get("CODEX_THREAD_ID")
    if caller:
        headers[CALLER_HEADER] = caller
    write = op["intent"] != "read"
    try:
        status, _headers, payload = daemon.request(
            "POST", "/ops/" + quote(op["id"], safe=""), params, headers
        )
    except NotSent:
        return Declined("no daemon answers")
    except OSError as exc:
        if write:
            return unknown_outcome(op, f"the daemon stopped answering ({exc})")
        return Declined("no daemon answers")
    if status == 200:
        emit(json.loads(payload), output_format(args))
        return 0
    if status == 401:
        return Declined("token refused", token_wanted=True, refused=daemon.token)
    body = error_body(payload)
    if status == 412 and body and body["error"]["code"] == "stale_snapshot":
        return Declined("stale snapshot")
    if body is None:
        if write:
            return unknown_outcome(op, f"the daemon answered HTTP {status}")
        return Declined(f"HTTP {status} without an error body")
    return emit_error_body(body)


def unknown_outcome(op: dict[str, Any], what: str) -> int:
    """A sent write without an answer: running it again in process could
    apply it twice, so say so instead."""
    error = DispatchError(
        f"`dispatch {op['cli']}`: {what}; it may or may not have been applied",
        hint="check with `dispatch get` or `dispatch list` before retrying",
    )
    return emit_error_body(error.as_dict())


def run_docs(
    daemon: Daemon,
    here: Path,
    snapshot: dict[str, Any],
    command: str,
    args: argparse.Namespace,
) -> int | Declined:
    """`dispatch schema` / `dispatch completion` from the snapshot's docs."""
    found = read_docs(here, snapshot["hash"])
    if found is None:
        fetched = fetch_snapshot(daemon, here)
        if isinstance(fetched, Declined) or fetched["hash"] != snapshot["hash"]:
            return Declined("snapshot docs unavailable")
        found = read_docs(here, snapshot["hash"])
    if found is None:
        return Declined("snapshot docs unavailable")
    if command == "completion":
        docs.completion(found, args)
        return 0
    try:
        result = docs.schema(snapshot, found, args)
    except DispatchError as exc:
        return emit_error_body(exc.as_dict())
    emit(result, output_format(args))
    return 0
