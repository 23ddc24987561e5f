"""`dispatch watch <lane> --follow [--also <lane>]...`: events as JSON lines.

It reads the running daemon's websocket (`/ws/lanes/<lane>/events`, or
`/ws/events` with `--also`: every lane over one socket), so it prints
exactly what every other watcher sees: one line per journal row
(`{"thread_id", "seq", "method", "params", "request_id", "turn_id",
"item_id", "received_at"}`), each once, in seq order per lane, until
Ctrl-C. Without `--after` it starts at the current end of each journal;
`--after SEQ` replays from there first. It first asks REST where each
lane's journal ends (and which thread a selector names), so every lane
has a concrete cursor from the start.

Where: $DISPATCH_URL, else the URL `dispatch up` recorded in
run/supervisor.json. Token: $DISPATCH_TOKEN, else the local token that
`dispatch mcp` bootstraps (run/mcp-token, created on first use from the
local registry), so following works with no set-up on the daemon's machine.

A dropped connection (daemon restart) is retried, resuming each lane after
the last seq printed for it (or its start), so the output has no gap and no
repeat across reconnects.
Ctrl-C, or a closed stdout (`| head`), ends it quietly with status 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO
from urllib.parse import quote, urlsplit, urlunsplit

from dispatchsite.core.commands import register_command
from dispatchsite.core.errors import (
    AuthorityError,
    DispatchError,
    NotFoundError,
    ValidationError,
    error_from_body,
)
from dispatchsite.surfaces.daemon import UP_FIX, local_base_url, resolve_token
from lanes.journal.reader import STREAM_MAX_LANES

OPEN_TIMEOUT_S = 5.0
RETRY_MAX_S = 5.0


def events_url(base_url: str, cursors: list[tuple[str, str]]) -> str:
    """The websocket URL for (lane selector, `after`) pairs."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    base = parts.path.rstrip("/")
    if len(cursors) == 1:
        ((lane, after),) = cursors
        path = base + f"/ws/lanes/{quote(lane, safe='@')}/events"
        query = f"after={after}"
    else:
        path = base + "/ws/events"
        query = "&".join(
            f"lane={quote(lane, safe='@')}&after={after}" for lane, after in cursors
        )
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def close_error(
    code: int | None, lanes: list[str], reason: str = ""
) -> DispatchError | None:
    """The error a refusing close code stands for; None to reconnect.

    The daemon sends a reason beside each code; it is quoted with the code
    so the message says why without a table of codes.
    """
    named = ", ".join(repr(lane) for lane in lanes)
    said = f" (close {code}: {reason})" if reason else f" (close {code})"
    if code == 4404:
        return NotFoundError(
            (
                f"no managed lane matches {named}"
                if len(lanes) == 1
                else f"one of {named} matches no managed lane"
            )
            + said,
            hint="see `dispatch list`",
        )
    if code == 4400:
        return ValidationError(f"the daemon refused to watch {named}{said}")
    if code == 4403:
        return AuthorityError(
            f"this token may not follow {named}{said}",
            hint="use a token whose lanes include them "
            "(`dispatch token create NAME --lane LANE`)",
        )
    if code == 4401:
        from dispatchsite.surfaces.auth import unauthorized

        refused = unauthorized()
        refused.message += said
        return refused
    return None


def events_of(raw: str | bytes) -> list[dict[str, Any]]:
    """The frames of one websocket message: one `{"events": [...]}` document."""
    return list(json.loads(raw)["events"])


class Follower:
    def __init__(
        self, *, base_url: str, lanes: list[str], token: str, out: TextIO
    ) -> None:
        self.base_url = base_url
        self.lanes = lanes
        # thread id -> the last seq printed (or to start after)
        self.cursors: dict[str, int] = {}
        self.token = token
        self.out = out
        self.streamed = False
        self.token_renewed = False

    def start_at(self, after: int | None) -> None:
        """Resolve each lane over REST; start after `after`, else at its end."""
        for lane in self.lanes:
            page = self.rest_get(
                f"/api/v1/lanes/{quote(lane, safe='@')}/watch?timeout=0&limit=1"
            )
            self.cursors.setdefault(
                page["lane"], page["last_seq"] if after is None else after
            )

    def rest_get(self, path: str) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.base_url.rstrip("/") + path,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=OPEN_TIMEOUT_S) as response:  # noqa: S310 (our own daemon's URL)
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and self.renew_token():
                return self.rest_get(path)
            try:
                body = json.loads(exc.read())
            except ValueError:
                body = {}
            raise error_from_body(body) from None
        except OSError as exc:
            raise DispatchError(
                f"cannot reach dispatch at {self.base_url}: {exc}", hint=UP_FIX
            ) from None

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        backoff = 0.2
        while True:
            url = events_url(
                self.base_url, [(t, str(seq)) for t, seq in self.cursors.items()]
            )
            try:
                self.stream(url)
                code, reason = None, ""
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                if not self.streamed:
                    raise DispatchError(
                        f"cannot reach dispatch at {self.base_url}: {exc}", hint=UP_FIX
                    ) from None
                code, reason = None, ""
            error = close_error(code, self.lanes, reason)
            if error is not None:
                if code == 4401 and self.renew_token():
                    continue
                raise error
            if code is not None:
                # stdout carries only frames; say on stderr why it reconnects.
                print(
                    f"dispatch: stream closed ({code}"
                    + (f": {reason}" if reason else "")
                    + "); reconnecting",
                    file=sys.stderr,
                )
            time.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_S)

    def stream(self, url: str) -> None:
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"}
        with connect(
            url,
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT_S,
            max_size=None,
            proxy=None,
        ) as socket:
            for raw in socket:
                for frame in events_of(raw):
                    self.out.write(json.dumps(frame, ensure_ascii=False) + "\n")
                    self.cursors[frame["thread_id"]] = frame["seq"]
                self.out.flush()
                self.streamed = True

    def renew_token(self) -> bool:
        """Replace a refused local token once (e.g. after a registry reset)."""
        if self.token_renewed:
            return False
        # $DISPATCH_TOKEN comes back unchanged: it is never renewed.
        self.token_renewed = True
        fresh = resolve_token(self.token)
        if not fresh or fresh == self.token:
            return False
        self.token = fresh
        return True


def configure_follow(parser: argparse.ArgumentParser) -> None:
    # `watch` already has <lane> and --after; --follow is the switch.
    parser.add_argument(
        "--also",
        action="append",
        metavar="LANE",
        default=argparse.SUPPRESS,
        help="with --follow: another lane to follow on the same stream "
        f"(repeatable, up to {STREAM_MAX_LANES} in all)",
    )


@register_command(
    "watch --follow",
    help="stream the lane's events as JSON lines until interrupted",
    configure=configure_follow,
    switch_only=("also",),
    switch_takes=("lane", "after"),
)
def watch_follow(args: argparse.Namespace) -> Any:
    base_url = local_base_url()
    if not base_url:
        raise DispatchError("dispatch is not running", hint=UP_FIX)
    token = resolve_token()
    if not token:
        raise DispatchError(
            "no API token to watch with",
            hint="set DISPATCH_TOKEN (see `dispatch token create NAME`) or run "
            "`dispatch up` on this machine",
        )
    lanes = list(dict.fromkeys([args.lane, *getattr(args, "also", [])]))
    if len(lanes) > STREAM_MAX_LANES:
        raise ValidationError(
            f"{len(lanes)} lanes to follow; a stream takes {STREAM_MAX_LANES}",
            hint="split them over several `dispatch watch --follow` commands",
        )
    follower = Follower(base_url=base_url, lanes=lanes, token=token, out=sys.stdout)
    follower.start_at(getattr(args, "after", None))
    try:
        follower.run()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): stop without a traceback, and
        # keep the interpreter's final flush from failing on the pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return None
