"""daphne as `dispatch up` runs it: daphne's own command line, with secrets
redacted from its access log (a `?token=` would otherwise land in web.log).

With DISPATCH_WEB_PROCESSES > 1 several of these serve one port: each binds
it with SO_REUSEPORT (`--shared-port`) and the kernel spreads connections
over them, so the API is not held to one process's GIL. Each then writes
`--ready-file` ({"pid": ...}), because a probe of the shared port cannot tell
which process answered.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from daphne import cli
from daphne.access import AccessLogGenerator
from daphne.server import Server

SECRET_QUERY = re.compile(
    r"(?i)([?&](?:token|access_token|api_key|key|secret|password)=)[^&\s\"]*"
)
TOKEN_SHAPED = re.compile(r"dsp_[A-Za-z0-9_\-]+")
REDACTED = "[redacted]"
LISTEN_BACKLOG = 1024


def redact(text: str) -> str:
    """`text` without query secrets or anything shaped like a dispatch token."""
    return TOKEN_SHAPED.sub("dsp_" + REDACTED, SECRET_QUERY.sub(r"\1" + REDACTED, text))


class RedactingAccessLog(AccessLogGenerator):  # type: ignore[misc]
    def write_entry(
        self, host: Any, date: datetime, request: str, *args: Any, **kwargs: Any
    ) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)


def shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` that sibling web processes share."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(LISTEN_BACKLOG)
    return listener


def take_option(argv: list[str], name: str) -> str | None:
    """Remove `name VALUE` from argv (daphne does not know it); its value."""
    if name not in argv:
        return None
    at = argv.index(name)
    value = argv[at + 1]
    del argv[at : at + 2]
    return value


def ready_file_server(path: Path) -> type[Server]:
    class ReadyFileServer(Server):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ready_callable"] = self.say_ready
            super().__init__(*args, **kwargs)

        def say_ready(self) -> None:
            path.write_text(json.dumps({"pid": os.getpid()}))

    return ReadyFileServer


def main() -> None:
    # daphne's CLI builds its access log from the name it imported.
    cli.AccessLogGenerator = RedactingAccessLog
    argv = sys.argv
    shared = take_option(argv, "--shared-port")
    ready_file = take_option(argv, "--ready-file")
    if shared is not None:
        host, _, port = shared.rpartition(":")
        # Kept open for the life of the process: daphne adopts its fd.
        listener = shared_listener(host, int(port))
        argv[1:1] = ["--fd", str(listener.fileno())]
    if ready_file is not None:
        cli.CommandLineInterface.server_class = ready_file_server(Path(ready_file))
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
