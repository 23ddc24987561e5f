"""Two worker hosts on one machine, as two machines would run them.

`dispatch worker --host a` and `--host b`, each with its own CODEX_HOME and
the real codex app-server against the mock Responses server, share one
database (Postgres when DATABASE_URL names one, else a SQLite file) and one
Redis. Lanes live on both; stopping b makes its lanes answer
host_unavailable at once while a keeps working; a lane moves from b to a
once a's CODEX_HOME can see its rollout.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hosts import shared_database
from tests.support.codex_env import codex_binary, write_codex_home
from tests.support.mock_responses import MockResponsesServer, last_user_text
from tests.support.stack import REPO, Stack, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(codex_binary() is None, reason="codex binary not installed"),
]


class Hosts:
    def __init__(self, root: Path, mock: MockResponsesServer, url: str) -> None:
        redis_sock = root / "home" / "run" / "redis.sock"
        # The Stack builds the environment (real codex, mock model) and runs
        # Redis; its own single worker is not used.
        self.stack = Stack(
            root,
            codex="real",
            mock_base_url=mock.base_url,
            extra_env={
                "DATABASE_URL": url,
                "DISPATCH_REDIS_URL": f"unix://{redis_sock}",
                "DISPATCH_HOST": "a",
            },
        )
        self.root = root
        self.mock = mock
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def codex_home(self, host: str) -> Path:
        return self.stack.codex_home if host == "a" else self.root / f"codex-{host}"

    def start_worker(self, host: str) -> None:
        home = self.codex_home(host)
        if host != "a" and not home.exists():
            write_codex_home(home, base_url=self.mock.base_url)
        state = self.stack.run_dir / f"worker-{host}.json"
        state.unlink(missing_ok=True)
        log = open(self.root / f"worker-{host}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatchsite.cli", "worker", "--host", host],
            env={**self.stack.env, "CODEX_HOME": str(home), "DISPATCH_HOST": host},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers[host] = proc

        def ready() -> bool:
            if proc.poll() is not None:
                text = (self.root / f"worker-{host}.log").read_text(errors="replace")
                raise AssertionError(f"worker {host} exited early:\n{text[-3000:]}")
            return state.exists()

        wait_for(ready, timeout=60, what=f"worker {host} ready")

    def stop_worker(self, host: str) -> None:
        proc = self.workers.pop(host)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.workers.values():
            proc.terminate()
        for proc in self.workers.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.stack.stop()

    def cli_ok(self, *args: str) -> Any:
        return self.stack.cli_ok(*args)

    def wait_idle(self, ref: str) -> Any:
        """The lane once its latest turn completed (polled via `get`)."""

        def done() -> Any:
            got = self.stack.cli_ok("get", ref)
            turn = got.get("latest_turn") or {}
            return got if turn.get("status") == "completed" else None

        return wait_for(done, timeout=90, what=f"{ref}: a completed turn")

    def model_inputs(self) -> list[str]:
        return [
            last_user_text(r["body"].get("input"))
            for r in self.mock.requests("/v1/responses")
        ]


@pytest.fixture
def hosts(tmp_path: Path, mock: MockResponsesServer) -> Iterator[Hosts]:
    with shared_database(tmp_path) as url:
        running = Hosts(tmp_path, mock, url)
        try:
            running.stack.start_redis()
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"],
                env=running.stack.env,
                cwd=REPO,
                check=True,
            )
            running.start_worker("a")
            running.start_worker("b")
            yield running
        finally:
            running.stop()


def rollouts(codex_home: Path, thread_id: str) -> list[Path]:
    return sorted((codex_home / "sessions").rglob(f"rollout-*{thread_id}.jsonl"))


def test_it_runs_lanes_on_two_hosts_and_moves_one(hosts: Hosts) -> None:
    on_a = hosts.cli_ok("new", "--name", "alpha", "--host", "a", "--text", "hi a")
    on_b = hosts.cli_ok("new", "--name", "beta", "--host", "b", "--text", "hi b")
    assert (on_a["host"], on_b["host"]) == ("a", "b")
    hosts.wait_idle(on_a["ref"])
    hosts.wait_idle(on_b["ref"])
    assert {"hi a", "hi b"} <= set(hosts.model_inputs())
    # Each thread ran on its own host's app-server (its own CODEX_HOME).
    assert rollouts(hosts.codex_home("b"), on_b["id"])
    assert not rollouts(hosts.codex_home("a"), on_b["id"])

    status = hosts.cli_ok("daemon", "status")
    by_host = {h["host"]: h for h in status["hosts"]}
    assert by_host["a"]["live"] and by_host["b"]["live"]
    assert by_host["a"]["lanes"] == 1 and by_host["b"]["lanes"] == 1
    assert by_host["b"]["app_server_version"]

    hosts.stop_worker("b")
    began = time.monotonic()
    refused = hosts.stack.cli("send", on_b["ref"], "while b is down")
    took = time.monotonic() - began
    assert refused.status == 10, refused.stderr
    assert refused.error["code"] == "host_unavailable"
    assert "'b'" in refused.error["message"]
    assert took < 15, f"host_unavailable took {took:.1f}s"
    assert "while b is down" not in hosts.model_inputs()

    # Host a keeps working meanwhile.
    hosts.cli_ok("send", on_a["ref"], "a still works")
    wait_for(
        lambda: "a still works" in hosts.model_inputs(),
        timeout=60,
        what="host a's second turn reached the model",
    )
    status = hosts.cli_ok("daemon", "status")
    live = {h["host"]: h["live"] for h in status["hosts"]}
    assert live == {"a": True, "b": False}

    # Host a's CODEX_HOME has no rollout of b's thread: the move says why.
    cannot = hosts.stack.cli("lane", "move", on_b["ref"], "--host", "a")
    assert cannot.status == 4, cannot.stderr
    assert "rollout" in cannot.error["message"]
    assert "CODEX_HOME" in cannot.error["message"]
    assert hosts.cli_ok("get", on_b["ref"])["host"] == "b"

    # Shared rollout storage (here: the file copied over) lets it resume.
    source = rollouts(hosts.codex_home("b"), on_b["id"])[0]
    relative = source.relative_to(hosts.codex_home("b"))
    target = hosts.codex_home("a") / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    moved = hosts.cli_ok("lane", "move", on_b["ref"], "--host", "a")
    assert moved["host"] == "a" and moved["moved_from"] == "b"
    hosts.cli_ok("send", on_b["ref"], "after the move")
    request = wait_for(
        lambda: next(
            (
                r
                for r in hosts.mock.requests("/v1/responses")
                if last_user_text(r["body"].get("input")) == "after the move"
            ),
            None,
        ),
        timeout=60,
        what="the moved lane's turn reached the model",
    )
    # Host a's app-server resumed the thread with its history from b.
    assert "hi b" in str(request["body"].get("input"))
