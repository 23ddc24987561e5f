"""Process identity: which pid is still the process we started, and stopping it.

A pid alone is not an identity: after a reboot or a wrap-around it may name
someone else's process. Everything we signal is first matched against the
start time recorded when we spawned (or first saw) it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

# Between SIGTERM and SIGKILL, for every process the stack stops.
STOP_GRACE_S = 5.0

# Without procfs (macOS) ps(1) answers the same two questions, more slowly.
HAS_PROCFS = os.path.exists("/proc/self/stat")


def proc_start_token(pid: int) -> str | None:
    """Kernel start time of `pid`, or None if it is gone or a zombie."""
    if not HAS_PROCFS:
        return _ps_start_token(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parens; fields resume after ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def proc_cmdline(pid: int) -> list[str]:
    if not HAS_PROCFS:
        return _ps_command(pid)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_alive(pid: int | None) -> bool:
    return pid is not None and pid > 0 and proc_start_token(pid) is not None


def same_process(pid: int | None, token: str | None) -> bool:
    if pid is None or pid <= 0 or token is None:
        return False
    return proc_start_token(pid) == token


def kill_verified(pid: int | None, token: str | None, sig: int) -> bool:
    """Send `sig` only if `pid` is still the process we recorded."""
    if pid is None or not same_process(pid, token):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_verified(pid: int | None, token: str | None, *, grace: float) -> None:
    """SIGTERM, wait up to `grace`, SIGKILL; only ever our recorded process."""
    if pid is None or not kill_verified(pid, token, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and same_process(pid, token):
        time.sleep(0.05)
    kill_verified(pid, token, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while same_process(pid, token) and time.monotonic() < deadline:
        time.sleep(0.05)
    wait_dead([pid], timeout=1.0)


def wait_dead(pids: list[int], *, timeout: float) -> bool:
    """Wait until none of `pids` runs; a zombie is dead.

    Our orphans' zombies are init's to reap, which some containers' init does
    seconds late: waiting for that made `down` slow and changed nothing.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = [pid for pid in pids if proc_start_token(pid) is not None]
        if not pids or time.monotonic() >= deadline:
            return not pids
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies do not).

    An orphaned zombie waits for init to reap it, which some containers' init
    does seconds late: counting it kept `down` waiting that long.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not HAS_PROCFS:
        return True
    return any(
        int(fields[2]) == pgid and fields[0] not in ("Z", "X")
        for _pid, fields in proc_stats()
    )


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the /proc/PID/stat fields after comm: state, ppid, pgrp, ...)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm (field 2) may contain spaces and parens; fields resume after ")".
        yield int(entry.name), stat[stat.rfind(")") + 2 :].split()


def _ps_start_token(pid: int) -> str | None:
    # Fallback for systems without procfs (macOS).
    out = subprocess.run(
        ["ps", "-o", "state=,lstart=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not out or out.startswith("Z"):
        return None
    return out.split(None, 1)[-1]


def _ps_command(pid: int) -> list[str]:
    out = subprocess.run(
        ["ps", "-ww", "-o", "command=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return out.split()
