"""One live worker per host: the lease is a claim, not a last-writer-wins row.

The rules against the DB directly (another machine, a stale holder, a dead
or live process on this machine, a lease lost while running), then the
same through real `dispatch worker` processes on the fake app-server.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from dispatchsite.core.errors import ValidationError
from lanes.models import WorkerLease
from lanes.worker.daemon import HEARTBEAT_SECONDS
from lanes.worker.lease import FIX, HostLease, machine_identity
from tests.support.stack import DB_NAME, HOST, Stack, pid_alive, wait_for

ELSEWHERE = "other-machine 3f1d9c2e pid:[4026531836]"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lease_row(**fields: object) -> WorkerLease:
    values: dict[str, object] = {
        "host": HOST,
        "pid": 4242,
        "machine": ELSEWHERE,
        "heartbeat_at": timezone.now(),
        **fields,
    }
    return WorkerLease.objects.create(**values)


# -- the rules ----------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_host_whose_worker_elsewhere_is_live() -> None:
    held = lease_row(heartbeat_at=timezone.now() - timedelta(seconds=3))
    with pytest.raises(ValidationError) as refused:
        HostLease(host=HOST).claim()
    error = refused.value.as_dict()["error"]
    assert error["exit_status"] == 2
    assert error["message"].startswith(f"--host {HOST} is already served by")
    assert f"worker pid 4242 on machine {ELSEWHERE}" in error["message"]
    assert "last heartbeat 3" in error["message"]
    assert error["hint"] == "pick another --host, or stop that worker"
    holder = error["data"]["holder"]
    assert (holder["machine"], holder["pid"]) == (ELSEWHERE, 4242)
    assert 3 <= holder["heartbeat_age_s"] < 10
    # Nothing changed hands.
    row = WorkerLease.objects.get(host=HOST)
    assert (row.pid, row.machine, row.heartbeat_at) == (
        4242,
        ELSEWHERE,
        held.heartbeat_at,
    )


@pytest.mark.django_db
def test_it_takes_a_lease_whose_heartbeat_is_stale() -> None:
    lease_row(heartbeat_at=timezone.now() - timedelta(seconds=60))
    HostLease(host=HOST).claim()
    row = WorkerLease.objects.get(host=HOST)
    assert (row.pid, row.machine) == (os.getpid(), machine_identity())
    assert row.is_fresh() and row.app_server_pid is None


@pytest.mark.django_db
def test_it_takes_a_dead_local_workers_fresh_lease_at_once() -> None:
    lease_row(pid=dead_pid(), machine=machine_identity())
    HostLease(host=HOST).claim()
    assert WorkerLease.objects.get(host=HOST).pid == os.getpid()


@pytest.mark.django_db
def test_it_refuses_a_host_whose_local_worker_is_alive() -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lease_row(pid=alive.pid, machine=machine_identity())
        with pytest.raises(ValidationError, match=f"worker pid {alive.pid} on"):
            HostLease(host=HOST).claim()
    finally:
        alive.kill()
        alive.wait()
    assert WorkerLease.objects.get(host=HOST).pid == alive.pid


@pytest.mark.django_db
def test_it_notices_a_lease_taken_while_running_and_leaves_it_alone() -> None:
    mine = HostLease(host=HOST)
    mine.claim()
    mine.beat(app_server_pid=11, app_server_version="0.169.0")
    assert mine.lost is None
    # Another worker took the host while this one's heartbeats stalled.
    WorkerLease.objects.filter(host=HOST).update(
        pid=4242, machine=ELSEWHERE, app_server_pid=22, heartbeat_at=timezone.now()
    )
    mine.beat(app_server_pid=11, app_server_version="0.169.0")
    assert mine.lost is not None
    assert "lost the host's lease to worker pid 4242" in mine.lost.message
    assert mine.lost.hint == FIX
    mine.release()
    row = WorkerLease.objects.get(host=HOST)
    assert (row.pid, row.app_server_pid) == (4242, 22)


# -- real workers ---------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path, migrated_db: Path) -> Iterator[Stack]:
    started = Stack(tmp_path, codex="fake", template_db=migrated_db)
    try:
        yield started.start()
    finally:
        started.stop()


def lease_holder(stack: Stack) -> tuple[int, str]:
    rows = stack.query(
        "select pid, machine from lanes_workerlease where host = ?", HOST
    )
    assert len(rows) == 1, rows
    return rows[0]


def set_heartbeat(stack: Stack, when: datetime) -> None:
    # As Django stores it on SQLite: naive UTC.
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with stack.db() as conn:
        conn.execute(
            "update lanes_workerlease set heartbeat_at = ? where host = ?",
            (text, HOST),
        )


def freeze_between_writes(stack: Stack, proc: subprocess.Popen[bytes]) -> None:
    """SIGSTOP `proc` when it holds no SQLite write lock (else nobody could write)."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        conn = sqlite3.connect(stack.home / DB_NAME, timeout=0.5)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            conn.close()
    raise AssertionError("the worker never let go of the database")


def end(proc: subprocess.Popen[bytes]) -> None:
    """Thaw and kill `proc` if the test left it running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


def turn_starts(stack: Stack) -> list[dict[str, Any]]:
    return stack.received("turn/start")


def send_reaches_model(stack: Stack, ref: str, thread_id: str, text: str) -> None:
    stack.cli_ok("send", ref, text)
    stack.wait_lane(
        thread_id,
        lambda r: (
            r["latest_turn_status"] == "completed"
            and any(
                m["params"]["input"][0]["text"] == text
                for m in stack.received("turn/start")
            )
        ),
        timeout=30,
        what=f"a completed turn for {text!r}",
    )


def test_it_refuses_a_second_worker_for_a_live_host(stack: Stack) -> None:
    lane = stack.cli_ok("new", "--name", "first", "--text", "hello")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    first = stack.procs["worker"].pid
    app_servers = len(stack.received("initialize"))

    second = stack.cli("worker", "--host", HOST, timeout=60)

    assert second.status == 2, second
    error = second.error
    assert error["code"] == "validation"
    assert error["message"].startswith(f"--host {HOST} is already served by worker")
    assert f"pid {first} on machine {socket.gethostname()}" in error["message"]
    assert "last heartbeat" in error["message"]
    assert error["hint"] == "pick another --host, or stop that worker"
    assert error["data"]["holder"]["pid"] == first
    # It started no app-server and left the lease and the first worker alone.
    assert len(stack.received("initialize")) == app_servers
    assert lease_holder(stack)[0] == first
    assert pid_alive(first)
    send_reaches_model(stack, lane["ref"], lane["id"], "still served")


def test_it_takes_a_stale_lease_and_the_stalled_holder_stops(stack: Stack) -> None:
    lane = stack.cli_ok("new", "--name", "stale", "--text", "hello")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    stalled = stack.procs["worker"]
    try:
        freeze_between_writes(stack, stalled)
        # As if it had been frozen past the freshness window.
        set_heartbeat(stack, datetime.now(UTC) - timedelta(seconds=60))
        stack.start_worker()
        taker = stack.procs["worker"].pid
        assert lease_holder(stack)[0] == taker
        # A send while it is frozen: see the test below.
        stalled.send_signal(signal.SIGCONT)
        # Its next heartbeat finds the lease taken: it stops, non-zero.
        assert stalled.wait(timeout=30) == 2
    finally:
        end(stalled)
    log = (stack.root / "worker.log").read_text(errors="replace")
    assert f"lost the host's lease to worker pid {taker}" in log
    assert lease_holder(stack)[0] == taker and pid_alive(taker)
    send_reaches_model(stack, lane["ref"], lane["id"], "after the takeover")


def blpop_clients(stack: Stack) -> int:
    import redis

    client = redis.Redis(unix_socket_path=str(stack.run_dir / "redis.sock"))
    try:
        return sum(c["cmd"] == "blpop" for c in client.client_list())
    finally:
        client.close()


def test_it_hands_a_command_popped_after_losing_the_lease_to_the_new_worker(
    stack: Stack,
) -> None:
    lane = stack.cli_ok("new", "--name", "handed", "--text", "hello")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    stalled = stack.procs["worker"]
    sent: list[Any] = []
    try:
        freeze_between_writes(stack, stalled)
        frozen_at = time.monotonic()
        set_heartbeat(stack, datetime.now(UTC) - timedelta(seconds=60))
        stack.start_worker()
        taker = stack.procs["worker"].pid
        # The frozen worker's BLPOP was waiting first: Redis hands it the send.
        sender = threading.Thread(
            target=lambda: sent.append(stack.cli("send", lane["ref"], "handed over"))
        )
        sender.start()
        # Two workers and now the CLI waiting for its reply.
        wait_for(lambda: blpop_clients(stack) >= 3, timeout=60, what="the send")
        # Frozen for longer than a heartbeat, as a lease can only be taken
        # from a worker silent for its freshness window (faked above).
        time.sleep(max(0.0, frozen_at + HEARTBEAT_SECONDS + 1.5 - time.monotonic()))
        stalled.send_signal(signal.SIGCONT)
        assert stalled.wait(timeout=30) == 2
        sender.join(timeout=60)
    finally:
        end(stalled)
    log = (stack.root / "worker.log").read_text(errors="replace")
    assert "handed a turn/start command back" in log
    assert sent and sent[0].status == 0, sent
    stack.wait_lane(
        lane["id"],
        lambda r: (
            r["latest_turn_status"] == "completed"
            and any(
                m["params"]["input"][0]["text"] == "handed over"
                for m in stack.received("turn/start")
            )
        ),
        timeout=30,
        what="the handed-over send to complete",
    )
    assert lease_holder(stack)[0] == taker and pid_alive(taker)


def test_it_lets_a_restarted_worker_take_its_dead_predecessors_lease(
    stack: Stack,
) -> None:
    lane = stack.cli_ok("new", "--name", "restart", "--text", "hello")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    stack.kill("worker")
    # Fresh for the next minute: only "its pid is dead on this machine", not
    # staleness, can let the restart in, however slow this machine is.
    set_heartbeat(stack, datetime.now(UTC) + timedelta(seconds=60))
    stack.start_worker()
    new = stack.procs["worker"].pid
    assert lease_holder(stack) == (new, machine_identity())
    wait_for(lambda: stack.worker_state().get("ready"), what="the worker ready")
    send_reaches_model(stack, lane["ref"], lane["id"], "after the restart")
