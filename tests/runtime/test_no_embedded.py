"""`dispatch up --no-embedded`: only the components asked for, against an
external database and Redis, as two machines would run it (here two homes on
one machine sharing one database and one Redis; Postgres when DATABASE_URL
names a server, as in .ci/run, else a SQLite file).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts import shared_database
from tests.runtime import cli, cli_env
from tests.support.stack import REPO, redis_argv, wait_for

pytestmark = pytest.mark.timeout(240)


def test_it_refuses_no_embedded_without_external_urls(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    refused = cli("up", "--no-embedded", "--worker", "--host", "a", env=env)
    assert refused.status == 2, refused.stderr
    error = refused.error
    assert error["code"] == "validation"
    assert "DATABASE_URL" in error["message"]
    assert "DISPATCH_REDIS_URL" in error["message"]
    assert error["data"]["missing"] == ["DATABASE_URL", "DISPATCH_REDIS_URL"]
    assert not (tmp_path / "home" / "run" / "supervisor.pid").exists()

    half = cli(
        "up",
        "--no-embedded",
        "--web",
        env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )
    assert half.status == 2
    assert half.error["data"]["missing"] == ["DISPATCH_REDIS_URL"]


def test_it_refuses_component_flags_that_cannot_apply(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    without = cli("up", "--beat", env=env)
    assert without.status == 2
    assert "--no-embedded" in without.error["message"]
    nothing = cli("up", "--no-embedded", env=env)
    assert nothing.status == 2
    assert "--worker" in nothing.error["message"]
    bad_host = cli("up", "--no-embedded", "--worker", "--host", "a b", env=env)
    assert bad_host.status == 2
    assert "--host" in bad_host.error["message"]


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    # Postgres when DATABASE_URL names a server (.ci/run), else SQLite.
    with shared_database(tmp_path) as url:
        yield url


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen(redis_argv(sock), stdout=subprocess.DEVNULL)
    wait_for(sock.exists, timeout=10, what="redis socket")
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(timeout=10)


def test_it_runs_two_ups_on_one_machine_each_with_its_parts(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    shared = {
        "DATABASE_URL": database_url,
        "DISPATCH_REDIS_URL": redis_url,
    }
    one = cli_env(tmp_path / "one", **shared)
    two = cli_env(tmp_path / "two", **shared)
    main = cli(
        "up",
        "--no-embedded",
        "--web",
        "--celery",
        "--beat",
        "--worker",
        "--host",
        "a",
        "--port",
        "0",
        env=one,
    )
    try:
        assert main.status == 0, main.stderr
        assert set(main.json["components"]) == {"web", "worker", "celery", "beat"}
        assert main.json["url"].startswith("http://127.0.0.1:")
        # Beat is its own process here: celery runs without -B.
        run_one = tmp_path / "one" / "home" / "run"
        assert (run_one / "beat-a.json").exists()
        second = cli("up", "--no-embedded", "--worker", "--host", "b", env=two)
        assert second.status == 0, second.stderr
        assert set(second.json["components"]) == {"worker"}
        assert second.json["url"] is None
        # Each home keeps its own run/ files: nothing of b's lands in one's.
        assert (tmp_path / "two" / "home" / "run" / "worker-b.json").exists()
        assert not (run_one / "worker-b.json").exists()

        # The same home asked for something else says so, not "running".
        clash = cli("up", "--no-embedded", "--web", env=two)
        assert clash.status == 2
        assert "DISPATCH_HOME" in clash.error["message"]
        again = cli("up", "--no-embedded", "--worker", "--host", "b", env=two)
        assert again.status == 0 and again.json["status"] == "already_running"

        status = wait_for(
            lambda: (
                (s := cli("daemon", "status", env=one).json)
                and {h["host"] for h in s["hosts"] if h["live"]} == {"a", "b"}
                and s
            ),
            timeout=30,
            what="both hosts live in daemon status",
        )
        by_host = {h["host"]: h for h in status["hosts"]}
        assert by_host["b"]["app_server_version"] == "0.169.0"
        assert by_host["b"]["lease_age_s"] < 15
        # Both workers run here: the same machine identity, each its own pid.
        assert by_host["a"]["worker_machine"] == by_host["b"]["worker_machine"]
        assert socket.gethostname() in by_host["b"]["worker_machine"]
        assert by_host["a"]["worker_pid"] != by_host["b"]["worker_pid"]
        lane = cli("new", "--name", "on-b", "--host", "b", "--no-send", env=one)
        assert lane.status == 0, lane.stderr
        assert lane.json["host"] == "b"
        # Least loaded: a has no lane, b has one.
        other = cli("new", "--name", "auto", "--no-send", env=one)
        assert other.status == 0, other.stderr
        assert other.json["host"] == "a"
    finally:
        down_two = cli("down", env=two)
        down_one = cli("down", env=one)
    assert down_two.status == 0 and down_one.status == 0
    # b's worker released its lease on the way down: b's lanes answer at once.
    began = time.monotonic()
    refused = cli("send", "on-b", "hello", env=one)
    assert refused.status == 10, refused.stderr
    assert refused.error["code"] == "host_unavailable"
    assert time.monotonic() - began < 20


def test_it_runs_a_worker_in_the_foreground(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    env = cli_env(
        tmp_path,
        DATABASE_URL=database_url,
        DISPATCH_REDIS_URL=redis_url,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=REPO, check=True
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "dispatchsite.cli", "worker", "--host", "fg"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: any(
                h["host"] == "fg" and h["live"]
                for h in cli("daemon", "status", env=env).json["hosts"]
            ),
            timeout=30,
            what="the foreground worker's lease",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    hosts = cli("daemon", "status", env=env).json["hosts"]
    assert [h["host"] for h in hosts if h["live"]] == []
