"""`dispatch up`/`down`/`daemon status` as users run them, with the fake codex.

One stack is started for the module (a full up/down costs several seconds)
and taken through status, a worker kill and `down`, in file order; the bad
input cases fail before anything is spawned, so they run in-process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatchsite.core.errors import AppServerError, DispatchError, ValidationError
from dispatchsite.runtime import home
from dispatchsite.runtime.lifecycle import stack_down, stack_up
from dispatchsite.runtime.processes import proc_start_token, proc_stats
from dispatchsite.runtime.stack import BACKOFF_MAX_S, Child, build_children
from dispatchsite.runtime.supervisor import Supervisor
from tests.runtime import HOST, REPO, cli, cli_env, dispatch_home, fake_codex, pid_gone

pytestmark = pytest.mark.timeout(240)


def test_it_has_daphne_ping_websockets_as_configured(settings: Any) -> None:
    settings.DISPATCH_WS_PING_INTERVAL = 3
    settings.DISPATCH_WS_PING_TIMEOUT = 4
    children = build_children(port=8321, host=HOST, private_redis=False)
    web = next(child.argv for child in children if child.name == "web")
    assert web[web.index("--ping-interval") + 1] == "3"
    assert web[web.index("--ping-timeout") + 1] == "4"


def descendants(root: int) -> set[int]:
    """Every live process below `root`, via /proc parent links."""
    parents: dict[int, list[int]] = {}
    for pid, fields in proc_stats():
        parents.setdefault(int(fields[1]), []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_until(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def state(root: Path) -> dict[str, Any]:
    data = json.loads((root / "home" / "run" / "supervisor.json").read_text())
    assert isinstance(data, dict)
    return data


@dataclass
class Running:
    root: Path
    env: dict[str, str]
    up: dict[str, Any]
    elapsed: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("stack")
    env = cli_env(root)
    began = time.monotonic()
    result = cli("up", "--port", "0", env=env)
    elapsed = time.monotonic() - began
    assert result.status == 0, result.stderr
    print(
        f"\n`dispatch up` ready in {elapsed:.2f}s wall "
        f"({result.json['elapsed_s']}s after preflight)"
    )
    yield Running(root=root, env=env, up=result.json, elapsed=elapsed)
    if (root / "home" / "run" / "supervisor.pid").exists():
        cli("down", env=env)


def test_it_starts_every_component(stack: Running) -> None:
    up = stack.up
    assert up["status"] == "started" and up["started"] is True
    assert stack.elapsed < 30
    assert set(up["components"]) == {"redis", "web", "worker", "celery"}
    assert {c["status"] for c in up["components"].values()} == {"up"}
    with urllib.request.urlopen(up["url"] + "/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True}
    assert up["url"].startswith("http://127.0.0.1:")
    assert up["app_server"]["version"] == "0.169.0"
    assert not pid_gone(up["app_server"]["pid"])
    run = stack.root / "home" / "run"
    assert (run.stat().st_mode & 0o777) == 0o700
    assert (run / "redis.sock").exists()
    assert up["redis"] == {"url": f"unix://{run / 'redis.sock'}", "private": True}


def test_it_reports_already_running(stack: Running) -> None:
    again = cli("up", "--port", "0", env=stack.env)

    assert again.status == 0, again.stderr
    assert again.json["status"] == "already_running"
    assert again.json["started"] is False
    assert again.json["pid"] == stack.up["pid"]
    assert again.json["url"] == stack.up["url"]


def test_it_reports_each_component_in_daemon_status(stack: Running) -> None:
    result = cli("daemon", "status", env=stack.env)

    assert result.status == 0, result.stderr
    daemon = result.json["daemon"]
    assert daemon["running"] is True
    assert daemon["pid"] == stack.up["pid"]
    assert daemon["url"] == stack.up["url"]
    for name, info in daemon["components"].items():
        assert info["status"] == "up", name
        assert not pid_gone(info["pid"]), name
    assert daemon["app_server"]["version"] == "0.169.0"
    assert daemon["app_server"]["worker_pid"] == daemon["components"]["worker"]["pid"]


def test_it_restarts_a_killed_worker(stack: Running) -> None:
    before = state(stack.root)
    worker = before["components"]["worker"]
    old_app_server = before["app_server"]["pid"]

    os.kill(worker["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        info = state(stack.root)["components"]["worker"]
        fresh = info["pid"] != worker["pid"] and info["status"] == "up"
        return info if fresh else None

    after = wait_until(restarted, timeout=30, what="the worker to come back")
    assert after["restarts"] >= worker["restarts"] + 1
    assert after["last_exit"] == -signal.SIGKILL
    heartbeat = json.loads(
        (stack.root / "home" / "run" / f"worker-{HOST}.json").read_text()
    )
    assert heartbeat["pid"] == after["pid"]
    age = datetime.now(UTC) - datetime.fromisoformat(heartbeat["heartbeat_at"])
    assert age.total_seconds() < 10
    assert heartbeat["app_server_pid"] != old_app_server
    wait_until(lambda: pid_gone(old_app_server), timeout=10, what="old app-server")
    assert pid_gone(worker["pid"])


def test_it_stops_everything_and_leaves_no_process(stack: Running) -> None:
    supervisor = stack.up["pid"]
    current = state(stack.root)
    pids = {supervisor, *descendants(supervisor)}
    pids |= {c["pid"] for c in current["components"].values()}
    pids.add(current["app_server"]["pid"])
    assert len(pids) >= 6  # supervisor, 4 children, app-server (+ beat)

    down = cli("down", env=stack.env)

    assert down.status == 0, down.stderr
    assert down.json["status"] == "stopped" and down.json["stopped"] is True
    assert supervisor in down.json["pids"]
    # Dead: gone, or a zombie that init has yet to reap.
    assert [pid for pid in pids if not pid_gone(pid)] == []
    run = stack.root / "home" / "run"
    assert not (run / "supervisor.pid").exists()
    assert not (run / "supervisor.json").exists()
    assert not (run / "redis.sock").exists()

    # Same code as the CLI, minus a second interpreter start.
    with dispatch_home(stack.root / "home"):
        again = stack_down()
    assert again["status"] == "not_running"
    assert again["stopped"] is False


def test_it_never_signals_a_stale_pid(tmp_path: Path) -> None:
    me = os.getpid()
    with dispatch_home(tmp_path / "home"):
        home.ensure_home()
        home.supervisor_pidfile().write_text(f"{me}\n")
        # A recorded child whose start time does not match is not ours either.
        home.write_json_atomic(
            home.state_file(),
            {"pid": me, "components": {"web": {"pid": me, "pid_start": "1"}}},
        )

        result = stack_down()

        assert result["status"] == "not_running"
        assert result["pids"] == []
        assert not home.supervisor_pidfile().exists()
        assert not home.state_file().exists()
    assert not pid_gone(me)


def test_it_refuses_an_occupied_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = cli("up", "--port", str(port), env=cli_env(tmp_path))

    assert result.status == 2
    assert result.stdout == ""
    assert result.error["message"] == (
        f"port {port} on 127.0.0.1 is in use; "
        "choose another with --port N, or --port 0 for a free one"
    )
    assert not (tmp_path / "home" / "run" / "supervisor.pid").exists()


def test_it_refuses_a_home_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("data")
    with dispatch_home(blocker / "home"):
        with pytest.raises(ValidationError, match="writable directory") as caught:
            stack_up(port=0, foreground=False)
    assert str(blocker / "home") in caught.value.message
    assert blocker.read_text() == "data"


def test_it_refuses_a_corrupt_config_toml(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "config.toml").write_text("[policy\nallow = ")
    with dispatch_home(root, DISPATCH_CODEX_BIN=str(fake_codex(tmp_path))):
        with pytest.raises(ValidationError, match="not valid TOML") as caught:
            stack_up(port=0, foreground=False)
    assert caught.value.hint == f"fix or remove {root / 'config.toml'}"
    assert (root / "config.toml").read_text() == "[policy\nallow = "
    assert not (root / "run" / "supervisor.pid").exists()


def test_it_refuses_a_missing_codex_binary(tmp_path: Path) -> None:
    missing = tmp_path / "no-codex"
    with dispatch_home(tmp_path / "home", DISPATCH_CODEX_BIN=str(missing)):
        with pytest.raises(AppServerError, match="does not exist") as caught:
            stack_up(port=0, foreground=False)
    assert str(missing) in caught.value.message
    assert "DISPATCH_CODEX_BIN" in caught.value.hint
    assert caught.value.exit_status == 8


def real_codex() -> str | None:
    from tests.support.codex_env import codex_binary

    return codex_binary()


@pytest.mark.skipif(real_codex() is None, reason="the real codex is not installed")
def test_it_refuses_a_corrupt_codex_home_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text("model = [unclosed\n")
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    with dispatch_home(tmp_path / "home", DISPATCH_CODEX_BIN=real_codex()):
        with pytest.raises(AppServerError, match="invalid Codex configuration"):
            stack_up(port=0, foreground=False)
    assert (codex_home / "config.toml").read_text() == "model = [unclosed\n"


def test_it_supervises_in_the_foreground(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatchsite.cli", "up", "--foreground", "--port", "0"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        text = ""
        for line in proc.stdout:  # the ready document, then silence
            text += line
            if line.startswith("}"):
                break
        ready = json.loads(text)
        assert ready["status"] == "started"
        # exec keeps the pid a service manager started.
        assert ready["pid"] == proc.pid
        pids = {proc.pid, *descendants(proc.pid)}
        assert len(pids) >= 6
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, proc.stderr.read() if proc.stderr else ""
    for pid in pids:
        assert pid_gone(pid), pid
    assert not (tmp_path / "home" / "run" / "supervisor.pid").exists()


def test_it_stops_orphans_of_a_killed_supervisor(tmp_path: Path) -> None:
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with dispatch_home(tmp_path / "home"):
            home.ensure_home()
            home.write_json_atomic(
                home.state_file(),
                {
                    "pid": 999999,
                    "components": {
                        "web": {
                            "pid": orphan.pid,
                            "pid_start": proc_start_token(orphan.pid),
                        }
                    },
                },
            )

            result = stack_down()

        assert result["status"] == "not_running"
        assert result["pids"] == [orphan.pid]
        assert orphan.wait(timeout=5) == -signal.SIGTERM
    finally:
        orphan.kill()
        orphan.wait()


def bare_supervisor(children: list[Child]) -> Supervisor:
    supervisor = Supervisor(port=1, startup_timeout=20)
    supervisor.children = children
    return supervisor


def test_it_fails_fast_with_the_childs_last_words(tmp_path: Path) -> None:
    script = "import sys; print('loading'); print('boom: bad thing'); sys.exit(3)"
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    saved[signal.SIGHUP] = signal.getsignal(signal.SIGHUP)
    try:
        with dispatch_home(tmp_path / "home"):
            home.ensure_home()
            child = Child(
                name="web",
                argv=[sys.executable, "-c", script],
                probe=lambda child: False,
                log=home.log_file("web"),
            )
            with pytest.raises(DispatchError) as caught:
                bare_supervisor([child]).run()
            failed_state = home.read_json(home.state_file())
            pidfile_left = home.supervisor_pidfile().exists()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    assert caught.value.message == "web exited during startup (exit 3): boom: bad thing"
    assert caught.value.data["stderr_tail"][-2:] == ["loading", "boom: bad thing"]
    assert failed_state and failed_state["phase"] == "failed"
    assert not pidfile_left


def test_it_backs_off_exponentially_and_resets_after_a_long_run(
    tmp_path: Path,
) -> None:
    with dispatch_home(tmp_path / "home"):
        home.ensure_home()
        child = Child(
            name="web", argv=["true"], probe=lambda c: True, log=home.log_file("web")
        )
        supervisor = bare_supervisor([child])
        supervisor.phase = "running"
        delays = []
        for uptime in (1, 1, 1, 1, 1, 1, 1, 31):
            child.started_mono = time.monotonic() - uptime
            supervisor._on_exit(child, 1)
            delays.append(round(child.next_start - time.monotonic(), 1))

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, BACKOFF_MAX_S, BACKOFF_MAX_S, 0.5]
