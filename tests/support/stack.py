"""A dispatch stack in a temporary DISPATCH_HOME for process-level tests.

Starts what `dispatch up` would (a private Redis on a unix socket, the DB,
the worker owning an app-server; optionally daphne) as real subprocesses,
with either the fake app-server or the real codex binary against the mock
Responses server. Tests drive it through the CLI, as users do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.codex_env import codex_binary, codex_env, write_codex_home

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HOST = "testhost"
# The keys of one websocket frame (`LaneEvent.as_frame`), as clients see them.
FRAME_KEYS = frozenset(
    {
        "thread_id",
        "seq",
        "method",
        "params",
        "request_id",
        "turn_id",
        "item_id",
        "received_at",
    }
)
DB_NAME = "dispatch.sqlite3"


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict[str, Any]:
        return json.loads(self.stderr.strip().splitlines()[-1])["error"]


def fake_codex_wrapper(directory: Path) -> Path:
    wrapper = directory / "fake-codex"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "codex-cli 0.169.0"; exit 0; fi\n'
        f'exec "{sys.executable}" "{REPO / "tests/fakes/fake_appserver.py"}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 15.0, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or predicate}")


@contextmanager
def mock_responses_process(directory: Path) -> Iterator[int]:
    """The mock Responses server as its own process; yields its port.

    Benchmarks use it so that its streaming thread does not share a GIL
    with the clients being timed.
    """
    port_file = directory / "mock.port"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests/support/mock_responses.py")]
        + ["--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port_file.exists, timeout=10, what="the mock Responses server")
        yield int(port_file.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def redis_argv(sock: Path) -> list[str]:
    """A private, memory-only redis-server on a unix socket."""
    return [
        str(VENV_BIN / "redis-server"),
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
    ]


@dataclass
class Stack:
    root: Path
    codex: str = "fake"  # or "real"
    mock_base_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # A migrated database to copy instead of migrating (much faster).
    template_db: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    web_url: str | None = None

    def __post_init__(self) -> None:
        # Short names: the redis socket path must fit in sun_path (107 bytes).
        self.home = self.root / "home"
        self.codex_home = self.root / "codex"
        self.appserver_log = self.root / "appserver.jsonl"
        self.run_dir = self.home / "run"
        self.home.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        self.codex_home.mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DISPATCH_", "FAKE_APPSERVER_", "CODEX_"))
            and k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")
        }
        env.update(
            DISPATCH_HOME=str(self.home),
            CODEX_HOME=str(self.codex_home),
            DISPATCH_HOST=HOST,
            # pytest runs under tests.settings (in-memory channel layer); the
            # stack's processes share the real redis one.
            DJANGO_SETTINGS_MODULE="dispatchsite.settings",
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            # Each CLI call is a fresh interpreter: cached bytecode (kept out
            # of the repo) saves about a second per call on a loaded machine.
            PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "dispatch-pycache"),
        )
        if self.codex == "real":
            binary = codex_binary()
            if binary is None:
                raise RuntimeError("the real codex binary is not installed")
            assert self.mock_base_url, "a real-codex stack needs the mock server"
            write_codex_home(self.codex_home, base_url=self.mock_base_url)
            codex = codex_env(self.codex_home)
            env.update(
                {k: codex[k] for k in ("CODEX_HOME", "MOCK_API_KEY", "RUST_LOG")}
            )
            env["DISPATCH_CODEX_BIN"] = binary
        else:
            env["DISPATCH_CODEX_BIN"] = str(fake_codex_wrapper(self.root))
            env["FAKE_APPSERVER_LOG"] = str(self.appserver_log)
        env.update(self.extra_env)
        self.env = env

    # -- processes -----------------------------------------------------------

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start(self, *, web: bool = False) -> Stack:
        self.start_redis()
        if self.template_db is not None:
            shutil.copyfile(self.template_db, self.home / DB_NAME)
        else:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"],
                env=self.env,
                cwd=REPO,
                check=True,
            )
        self.start_worker()
        if web:
            self.start_web()
        return self

    def start_redis(self) -> None:
        sock = self.run_dir / "redis.sock"
        self.spawn("redis", [*redis_argv(sock), "--dir", str(self.run_dir)])
        wait_for(sock.exists, timeout=10, what="redis socket")

    def start_worker(self) -> None:
        state = self.worker_state_path
        state.unlink(missing_ok=True)
        self.spawn(
            "worker",
            [sys.executable, "-m", "dispatchsite.cli", "worker", "--host", HOST],
        )
        worker = self.procs["worker"]

        def ready() -> bool:
            if worker.poll() is not None:
                log = (self.root / "worker.log").read_text(errors="replace")
                raise AssertionError(f"the worker exited early:\n{log[-3000:]}")
            return state.exists()

        wait_for(ready, timeout=30, what=f"worker ready ({self.root}/worker.log)")

    def start_web(self, port: int | None = None, *, processes: int = 1) -> None:
        """daphne on `port`; `processes` > 1 share it as `web`, `web-2`, ..."""
        from dispatchsite.runtime.stack import web_argv, web_names

        port = port or free_port()
        # `dispatch up` passes DISPATCH_WS_PING_* (settings); here only a
        # test that sets them changes daphne's own defaults.
        interval = self.env.get("DISPATCH_WS_PING_INTERVAL")
        timeout = self.env.get("DISPATCH_WS_PING_TIMEOUT")
        ready_files = []
        for name in web_names(processes):
            ready = self.run_dir / f"{name}.json" if processes > 1 else None
            self.spawn(
                name,
                web_argv(
                    port=port,
                    ping_interval=int(interval) if interval else None,
                    ping_timeout=int(timeout) if timeout else None,
                    shared=processes > 1,
                    ready_file=ready,
                ),
            )
            if ready is not None:
                ready_files.append(ready)
        import urllib.request

        def healthy() -> bool:
            if not all(path.exists() for path in ready_files):
                return False
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=1
                ):
                    return True
            except OSError:
                return False

        wait_for(healthy, timeout=30, what="daphne")
        self.web_url = f"http://127.0.0.1:{port}"

    @property
    def worker_state_path(self) -> Path:
        return self.run_dir / f"worker-{HOST}.json"

    def worker_state(self) -> dict[str, Any]:
        return json.loads(self.worker_state_path.read_text())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=10)

    def stop(self) -> None:
        webs = [name for name in self.procs if name.startswith("web")]
        for name in (*webs, "worker", "redis"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    # -- driving ---------------------------------------------------------------

    def cli(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> CliResult:
        done = subprocess.run(
            [sys.executable, "-m", "dispatchsite.cli", *args],
            env={**self.env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def cli_ok(self, *args: str, **kwargs: Any) -> Any:
        result = self.cli(*args, **kwargs)
        assert result.status == 0, (
            f"dispatch {' '.join(args)} -> {result.status}: {result.stderr}"
        )
        try:
            return result.json
        except json.JSONDecodeError:
            return result.stdout

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / DB_NAME, timeout=20)

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

    def received(self, method: str | None = None) -> list[dict[str, Any]]:
        """Every request the fake app-server received (optionally one method)."""
        if not self.appserver_log.exists():
            return []
        lines = self.appserver_log.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if method is None or e.get("method") == method]

    def write_config(self, text: str) -> None:
        (self.home / "config.toml").write_text(text, encoding="utf-8")

    def lane_row(self, thread_id: str) -> dict[str, Any]:
        """The lane's DB row: cheap enough to poll (a CLI call costs ~1 s)."""
        with self.db() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM lanes_lane WHERE thread_id=?", (thread_id,)
            ).fetchone()
        return dict(row) if row else {}

    def wait_lane(
        self,
        thread_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 20,
        what: str = "lane state",
    ) -> dict[str, Any]:
        return wait_for(
            lambda: (row := self.lane_row(thread_id)) and predicate(row) and row,
            timeout=timeout,
            what=what,
        )

    def events(self, thread_id: str) -> list[tuple[int, str]]:
        with self.db() as conn:
            return list(
                conn.execute(
                    "SELECT seq, method FROM lanes_laneevent"
                    " WHERE thread_id=? ORDER BY seq",
                    (thread_id,),
                )
            )
