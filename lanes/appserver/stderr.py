"""A child's stderr: all of it to a log file, its last lines for error messages."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from pathlib import Path
from typing import IO

STDERR_TAIL_LINES = 50
STDERR_TAIL_LINE_CHARS = 2000

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Rust's anyhow backtrace without symbols: noise in an error message.
_BACKTRACE_NOISE = re.compile(r"^\s*(Stack backtrace:|\d+: <unknown>)\s*$")


class StderrTail:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def excerpt(self, lines: int = 10) -> str:
        """The last meaningful lines."""
        useful = [line for line in self.lines if not _BACKTRACE_NOISE.match(line)]
        return "\n".join(useful[-lines:])

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Read until EOF; the child blocks once a pipe nobody reads is full."""
        partial = b""
        try:
            while True:
                chunk = await stream.read(65536)
                if not chunk:
                    break
                if self._file is not None:
                    self._file.write(chunk)
                    self._file.flush()
                *complete, partial = (partial + chunk).split(b"\n")
                for raw in complete:
                    self._remember(raw)
                # A runaway line without newlines must not grow without bound.
                if len(partial) > STDERR_TAIL_LINE_CHARS * 4:
                    self._remember(partial)
                    partial = b""
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            if partial:
                self._remember(partial)
            self.close()

    def _remember(self, raw: bytes) -> None:
        text = _ANSI_ESCAPE.sub("", raw.decode("utf-8", "replace")).rstrip()
        if text:
            self.lines.append(text[:STDERR_TAIL_LINE_CHARS])
