"""A real dispatch stack for end-to-end op tests: redis, worker, fake app-server.

`stack` starts a private redis on a unix socket, migrates a fresh database,
and runs `dispatch worker` whose app-server is tests/fakes/fake_appserver.py
(behind a shell wrapper that answers `--version` like codex 0.169.0). Tests
drive it through `cli(...)`, the real CLI in a subprocess, so they assert on
what users see: stdout JSON, stderr JSON and the exit status.

A test module changes the stack's environment (e.g. a turn delay) by
overriding the module-scoped `stack_env` fixture. Self-contained on purpose:
it only needs the repo, the venv and its redis-server.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fakes" / "fake_appserver.py"
HOST = "testhost"
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
        uri = f"file:{self.home / 'dispatch.sqlite3'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def lane_state(self, ref: str) -> dict[str, Any]:
        rows = self.query(
            "select status, active_turn_id, latest_turn_status, queue_held "
            "from lanes_lane where ref = ?",
            ref,
        )
        status, active, latest, held = rows[0]
        return {"status": status, "active_turn_id": active,
                "latest_turn_status": latest, "queue_held": bool(held)}


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
        last = text.splitlines()[-1]
        try:
            return json.loads(last)
        except ValueError:
            return text


def wait_for(predicate: Any, *, timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


def foreign_thread(stack: Stack, *, text: str, name: str | None = None) -> str:
    """Start a thread (with one completed turn) in a second app-server process
    on the stack's CODEX_HOME, as another Codex client would; return its id."""
    env = {k: v for k, v in stack.env.items() if not k.startswith("FAKE_APPSERVER_")}
    proc = subprocess.Popen(
        [sys.executable, str(FAKE), "app-server"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    next_id = iter(range(1, 100))

    def request(method: str, params: dict[str, Any]) -> Any:
        request_id = next(next_id)
        line = {"id": request_id, "method": method, "params": params}
        proc.stdin.write(json.dumps(line) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        while True:
            message = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            if message.get("id") == request_id and "method" not in message:
                assert "error" not in message, message
                return message["result"]

    def wait_notification(method: str) -> None:
        while json.loads(proc.stdout.readline()).get("method") != method:  # type: ignore[union-attr]
            pass

    try:
        request("initialize", {"clientInfo": {"name": "other", "version": "1"}})
        thread_id = request("thread/start", {"cwd": str(stack.codex_home)})["thread"]["id"]
        request("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]})
        wait_notification("turn/completed")
        if name is not None:
            request("thread/name/set", {"threadId": thread_id, "name": name})
    finally:
        proc.stdin.close()
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


def _stop(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _start_stack(root: Path, extra_env: dict[str, str]) -> Stack:
    # Short paths: the redis socket path must fit in sun_path (107 bytes).
    home = root / "home"
    codex_home = root / "codex"
    run = home / "run"
    home.mkdir(parents=True)
    run.mkdir(mode=0o700)
    run.chmod(0o700)
    (home / "logs").mkdir()
    codex_home.mkdir()
    wrapper = root / "codex-bin"
    _write_codex_wrapper(wrapper)
    appserver_log = root / "appserver.jsonl"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DISPATCH_", "FAKE_APPSERVER_", "CODEX_"))
        },
        # pytest runs under tests.settings (in-memory channel layer); the
        # processes of the stack must share the real redis one.
        "DJANGO_SETTINGS_MODULE": "dispatchsite.settings",
        "DISPATCH_HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "DISPATCH_CODEX_BIN": str(wrapper),
        "DISPATCH_HOST": HOST,
        "DISPATCH_RPC_TIMEOUT": "10",
        "FAKE_APPSERVER_LOG": str(appserver_log),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        # Each CLI call is a fresh interpreter: cached bytecode (kept out of
        # the repo) saves about a second per call on a loaded machine.
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "dispatch-pycache"),
        **extra_env,
    }
    env.pop("DATABASE_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    stack = Stack(
        home=home, codex_home=codex_home, env=env, appserver_log=appserver_log
    )
    sock = run / "redis.sock"
    redis_log = (home / "logs" / "redis.log").open("wb")
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
        status, out, err = cli(
            "registry", "migrate", "--no-backup", env=env, timeout=120
        )
        assert status == 0, (out, err)
        wait_for(sock.exists, timeout=START_TIMEOUT)
        worker_log = (home / "logs" / "worker-test.log").open("wb")
        stack.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "dispatchsite.cli", "worker"],
                env=env,
                cwd=REPO,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
        )
        state = run / f"worker-{HOST}.json"

        def worker_ready() -> bool:
            if stack.processes[-1].poll() is not None:
                log = (home / "logs" / "worker-test.log").read_text(errors="replace")
                raise AssertionError(f"worker exited early:\n{log[-3000:]}")
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


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Extra environment for the module's stack; override in a test module."""
    return {}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]
) -> Iterator[Stack]:
    started = _start_stack(tmp_path_factory.mktemp("st"), stack_env)
    try:
        yield started
    finally:
        _stop_stack(started)
