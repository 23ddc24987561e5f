"""`dispatch mcp --http` as a subprocess for tests: its URL, stopped after."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.stack import REPO, free_port, wait_for


@contextmanager
def mcp_http_server(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """Start the MCP server over streamable HTTP and yield its /mcp URL."""
    port = free_port()
    with (log_dir / "mcp-http.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatchsite.cli", "mcp", "--http"]
            + ["--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def listening() -> bool:
                assert proc.poll() is None, "dispatch mcp --http exited"
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", port)) == 0

            wait_for(listening, timeout=30, what="dispatch mcp --http")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
