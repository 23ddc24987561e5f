"""The app-server child: spawned in its own process group, stopped by escalation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping

from lanes.appserver.framing import STDOUT_LINE_LIMIT

EXIT_POLL_S = 0.02


async def child_spawn(
    argv: list[str], *, env: Mapping[str, str] | None, cwd: str | None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        limit=STDOUT_LINE_LIMIT,
        # Own process group: a Ctrl-C aimed at dispatch must not kill
        # codex behind our back, and close() can reap the commands
        # codex leaves running after an interrupt.
        start_new_session=True,
    )


async def child_wait_exit(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """True once the child has exited, False if it still runs after `timeout`.

    Polls instead of proc.wait(): on 3.11 wait() also waits for the pipes,
    which a command codex left running can hold open forever.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.returncode is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(EXIT_POLL_S)
    return True


async def child_stop(
    proc: asyncio.subprocess.Process, *, graceful_timeout: float, kill_timeout: float
) -> None:
    """Close stdin, then escalate to SIGTERM and SIGKILL; then reap the group."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        # EOF on stdin is codex's clean shutdown (exit 0 in under 1 s).
        proc.stdin.close()
    if not await child_wait_exit(proc, graceful_timeout):
        child_signal(proc, signal.SIGTERM)
        if not await child_wait_exit(proc, kill_timeout):
            child_signal(proc, signal.SIGKILL)
            await child_wait_exit(proc, 5.0)
    child_kill_group(proc)


def child_signal(proc: asyncio.subprocess.Process, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)


def child_kill_group(proc: asyncio.subprocess.Process) -> None:
    # The group id is the child's pid (start_new_session); it is not
    # reused while any member of the group is still alive.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
