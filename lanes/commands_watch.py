"""`dispatch watch <lane> --follow`: a lane's events as JSON lines, until Ctrl-C.

It reads the running daemon's websocket (`/ws/lanes/<lane>/events`), so it
prints exactly what every other watcher sees: one line per journal row
(`{"seq", "method", "params", "request_id", "turn_id", "item_id",
"received_at"}`), each once, in seq order. Without `--after` it starts at
the current end of the journal; `--after SEQ` replays from there first.

Where: $DISPATCH_URL, else the URL `dispatch up` recorded in
run/supervisor.json. Token: $DISPATCH_TOKEN, else the local token that
`dispatch mcp` bootstraps (run/mcp-token, created on first use from the
local registry), so following works with no set-up on the daemon's machine.

A dropped connection (daemon restart) is retried, resuming after the last
seq printed, so the output has no gap and no repeat across reconnects.
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

from dispatchsite.errors import DispatchError, NotFoundError, ValidationError
from dispatchsite.surfaces.commands import register_command

UP_FIX = "run `dispatch up` (or point DISPATCH_URL at a running dispatch)"
OPEN_TIMEOUT_S = 5.0
RETRY_MAX_S = 5.0


def events_url(base_url: str, lane: str, after: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + f"/ws/lanes/{quote(lane, safe='@')}/events"
    return urlunsplit((scheme, parts.netloc, path, f"after={after}", ""))


def close_error(code: int | None, lane: str) -> DispatchError | None:
    """The error a refusing close code stands for; None to reconnect."""
    if code == 4404:
        return NotFoundError(
            f"no managed lane matches {lane!r}", hint="see `dispatch list`"
        )
    if code == 4400:
        return ValidationError(f"the daemon refused to watch {lane!r} (bad request)")
    if code == 4401:
        from dispatchsite.auth import unauthorized

        return unauthorized()
    return None


class Follower:
    def __init__(
        self, *, base_url: str, lane: str, after: int | None, token: str, out: TextIO
    ) -> None:
        self.base_url = base_url
        self.lane = lane
        self.cursor = "latest" if after is None else str(after)
        self.token = token
        self.out = out
        self.streamed = False
        self.token_renewed = False

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        backoff = 0.2
        while True:
            url = events_url(self.base_url, self.lane, self.cursor)
            try:
                self.stream(url)
                code = None
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                if not self.streamed:
                    raise DispatchError(
                        f"cannot reach dispatch at {self.base_url}: {exc}", hint=UP_FIX
                    ) from None
                code = None
            error = close_error(code, self.lane)
            if error is not None:
                if code == 4401 and self.renew_token():
                    continue
                raise error
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
                for line in str(raw).splitlines():
                    frame = json.loads(line)
                    self.out.write(json.dumps(frame, ensure_ascii=False) + "\n")
                    self.cursor = str(frame["seq"])
                self.out.flush()
                self.streamed = True

    def renew_token(self) -> bool:
        """Replace a refused local token once (e.g. after a registry reset)."""
        if self.token_renewed or os.environ.get("DISPATCH_TOKEN"):
            return False
        from dispatchsite.surfaces.mcp import resolve_token

        self.token_renewed = True
        fresh = resolve_token(self.token)
        if not fresh or fresh == self.token:
            return False
        self.token = fresh
        return True


def configure_follow(parser: argparse.ArgumentParser) -> None:
    pass  # `watch` already has <lane> and --after; --follow is the switch


@register_command(
    "watch --follow",
    help="stream the lane's events as JSON lines until interrupted",
    configure=configure_follow,
)
def watch_follow(args: argparse.Namespace) -> Any:
    for flag in ("limit", "timeout"):
        if hasattr(args, flag):
            raise ValidationError(
                f"--{flag} does not apply to `dispatch watch --follow`",
                hint="--follow streams until Ctrl-C; without it, a bounded sample",
            )
    from dispatchsite.surfaces.mcp import local_base_url, resolve_token

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
    follower = Follower(
        base_url=base_url,
        lane=args.lane,
        after=getattr(args, "after", None),
        token=token,
        out=sys.stdout,
    )
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
