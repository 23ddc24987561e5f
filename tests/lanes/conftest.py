"""A real dispatch stack for end-to-end op tests: redis, worker, fake app-server.

`stack` starts a private redis on a unix socket, gives it a migrated
database, and runs `dispatch worker` whose app-server is
tests/fakes/fake_appserver.py (behind a shell wrapper that answers
`--version` like codex 0.169.0). Tests drive it through `cli(...)`, the real
CLI in a subprocess, so they assert on what users see: stdout JSON, stderr
JSON and the exit status.

A test module changes the stack's environment by overriding the
module-scoped `stack_env` fixture. Self-contained on purpose: it only needs
the repo, the venv and its redis-server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fakes" / "fake_appserver.py"
HOST = "testhost"
DB_NAME = "dispatch.sqlite3"
START_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


@dataclass
class Stack:
    home: Path
    codex_home: Path
    env: dict[str, str]
    appserver_log: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def received(self, method: str | None = None) -> list[dict[str, Any]]:
        """Every request the fake app-server received (optionally one method)."""
        if not self.appserver_log.exists():
            return []
        lines = self.appserver_log.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if method is None or e.get("method") == method]

    def write_config(self, text: str) -> None:
        (self.home / "config.toml").write_text(text, encoding="utf-8")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the stack's database directly: cheap polling for waits.

        Assertions about behaviour go through the CLI; this only saves the
        interpreter start-up of a CLI call per poll.
        """
        uri = f"file:{self.home / DB_NAME}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def lane_state(self, ref: str) -> dict[str, Any]:
        rows = self.query(
            "select status, active_turn_id, latest_turn_status, queue_held "
            "from lanes_lane where ref = ?",
            ref,
        )
        status, active, latest, held = rows[0]
        return {
            "status": status,
            "active_turn_id": active,
            "latest_turn_status": latest,
            "queue_held": bool(held),
        }


def cli(
    *args: str, env: dict[str, str], timeout: float = CLI_TIMEOUT
) -> tuple[int, Any, Any]:
    """Run `dispatch <args>`; return (exit status, stdout JSON, stderr JSON)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dispatchsite.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, _json_or_text(proc.stdout), _json_or_text(proc.stderr)


def _json_or_text(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # stderr may carry log lines before the JSON error: take the last line.
        try:
            return json.loads(text.splitlines()[-1])
        except ValueError:
            return text


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


def foreign_thread(stack: Stack, *, text: str, name: str | None = None) -> str:
    """Start a thread (one completed turn) in a second app-server process on
    the stack's CODEX_HOME, as another Codex client would; return its id."""
    env = {k: v for k, v in stack.env.items() if not k.startswith("FAKE_APPSERVER_")}
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "app-server"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None
    ids = iter(range(1, 100))

    def request(method: str, params: dict[str, Any]) -> Any:
        request_id = next(ids)
        stdin.write(json.dumps({"id": request_id, "method": method, "params": params}))
        stdin.write("\n")
        stdin.flush()
        while True:
            message = json.loads(stdout.readline())
            if message.get("id") == request_id and "method" not in message:
                assert "error" not in message, message
                return message["result"]

    try:
        request("initialize", {"clientInfo": {"name": "other", "version": "1"}})
        started = request("thread/start", {"cwd": str(stack.codex_home)})
        thread_id = started["thread"]["id"]
        request(
            "turn/start",
            {"threadId": thread_id, "input": [{"type": "text", "text": text}]},
        )
        while json.loads(stdout.readline()).get("method") != "turn/completed":
            pass
        if name is not None:
            request("thread/name/set", {"threadId": thread_id, "name": name})
    finally:
        stdin.close()
        proc.wait(10)
    return thread_id


def _write_codex_wrapper(path: Path) -> None:
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "codex-cli 0.169.0"; exit 0; fi\n'
        f'exec "{sys.executable}" "{FAKE}" "$@"\n',
        encoding="utf-8",
    )
    path.chmod(0o755)


def _redis_server() -> str:
    venv_bin = Path(sys.executable).parent
    for candidate in (venv_bin / "redis-server", shutil.which("redis-server")):
        if candidate and os.access(str(candidate), os.X_OK):
            return str(candidate)
    pytest.skip("no redis-server in the venv or on PATH")


def _base_env(home: Path, codex_home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISPATCH_", "FAKE_APPSERVER_", "CODEX_"))
        and k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
    }
    env.update(
        {
            # pytest runs under tests.settings (in-memory channel layer); the
            # processes of the stack must share the real redis one.
            "DJANGO_SETTINGS_MODULE": "dispatchsite.settings",
            "DISPATCH_HOME": str(home),
            "CODEX_HOME": str(codex_home),
            "DISPATCH_HOST": HOST,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            # Each CLI call is a fresh interpreter: cached bytecode (kept out
            # of the repo) saves about a second per call on a loaded machine.
            "PYTHONPYCACHEPREFIX": str(
                Path(tempfile.gettempdir()) / "dispatch-pycache"
            ),
        }
    )
    return env


def _stop(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _start_stack(root: Path, template_db: Path, extra_env: dict[str, str]) -> Stack:
    # Short paths: the redis socket path must fit in sun_path (107 bytes).
    home, codex_home = root / "home", root / "codex"
    run = home / "run"
    home.mkdir(parents=True)
    run.mkdir(mode=0o700)
    run.chmod(0o700)
    (home / "logs").mkdir()
    codex_home.mkdir()
    shutil.copyfile(template_db, home / DB_NAME)
    wrapper = root / "codex-bin"
    _write_codex_wrapper(wrapper)
    appserver_log = root / "appserver.jsonl"
    env = _base_env(home, codex_home)
    env.update(
        {
            "DISPATCH_CODEX_BIN": str(wrapper),
            "DISPATCH_RPC_TIMEOUT": "10",
            "FAKE_APPSERVER_LOG": str(appserver_log),
            **extra_env,
        }
    )
    stack = Stack(
        home=home, codex_home=codex_home, env=env, appserver_log=appserver_log
    )
    sock = run / "redis.sock"
    with (home / "logs" / "redis.log").open("wb") as redis_log:
        stack.processes.append(
            subprocess.Popen(
                [
                    _redis_server(),
                    "--unixsocket",
                    str(sock),
                    "--unixsocketperm",
                    "700",
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(run),
                ],
                stdout=redis_log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        wait_for(sock.exists, timeout=START_TIMEOUT)
        worker_log = home / "logs" / "worker-test.log"
        with worker_log.open("wb") as log:
            stack.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dispatchsite.cli", "worker"],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        state = run / f"worker-{HOST}.json"

        def worker_ready() -> bool:
            if stack.processes[-1].poll() is not None:
                tail = worker_log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"the worker exited early:\n{tail}")
            return state.exists()

        wait_for(worker_ready, timeout=START_TIMEOUT)
    except BaseException:
        _stop_stack(stack)
        raise
    return stack


def _stop_stack(stack: Stack) -> None:
    # Worker first (it closes its app-server), then redis.
    for proc in reversed(stack.processes):
        _stop(proc)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `dispatch registry migrate` per session; each stack gets a copy."""
    root = tmp_path_factory.mktemp("template")
    home = root / "home"
    env = _base_env(home, root / "codex")
    status, out, err = cli("registry", "migrate", "--no-backup", env=env, timeout=180)
    assert status == 0, (out, err)
    db = home / DB_NAME
    with sqlite3.connect(db) as conn:  # fold the WAL in: one file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Extra environment for the module's stack; override in a test module."""
    return {}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_db: Path,
    stack_env: dict[str, str],
) -> Iterator[Stack]:
    started = _start_stack(tmp_path_factory.mktemp("st"), migrated_db, stack_env)
    try:
        yield started
    finally:
        _stop_stack(started)
