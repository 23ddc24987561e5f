"""Benchmarks of the two user-visible latencies dispatch promises.

(a) `dispatch list` wall time with 100 registered lanes and the daemon's web
    server up (a fresh Python process per run, as a shell user pays it; the
    thin client answers it over REST without Django), next to the floors it
    sits on: bare `python -c pass` and `django.setup()` alone, and next to
    the same `dispatch list` run in process (DISPATCH_THIN=0, the path when
    no daemon runs); and `dispatch send --queue` both ways (a write; queue
    mode as this section runs no worker to start a turn: the message waits
    in the lane's queue, a private Redis takes the wake-up publish).
(b) REST `send` latency (POST /api/v1/lanes/{lane}/send through daphne,
    the channel layer and the worker) next to a direct `turn/start` on a
    separately spawned app-server, both with the REAL codex binary against
    the mock Responses server, measured alternately in one run on idle
    threads (each turn finishes before the next request).

Prints a table and a JSON document (`--json-out FILE` also writes it).
Targets (issue 15): list median <= 0.15 s, CLI send <= 0.2 s; REST send
median within 10 ms of direct. Scale rows (1,000 lanes, RSS): bench_scale.py.
No assertions: this reports, CI does not gate on it.

    .venv/bin/python bench/bench_lanes.py [--runs 15] [--sends 30] [--skip-rest]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIST_TARGET_S = 0.15
SEND_CLI_TARGET_S = 0.2
SEND_BUDGET_MS = 10.0


def median(values: list[float]) -> float:
    return statistics.median(values)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": median(values),
        "min": ordered[0],
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "max": ordered[-1],
        "n": len(values),
    }


# -- (a) dispatch list --------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISPATCH_", "CODEX_", "DJANGO_"))
    }
    env.update(
        DISPATCH_HOME=str(home),
        DISPATCH_HOST="benchhost",
        DJANGO_SETTINGS_MODULE="dispatchsite.settings",
        PYTHONPATH=str(REPO),
    )
    return env


SEED = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from lanes.services import lane_register
for i in range({n}):
    lane_register(thread_id=f"bench-thread-{{i:04d}}", title=f"lane-{{i:03d}}",
                  source="own", cwd=f"/srv/bench/{{i}}", host="benchhost")
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run; CPU time is steadier on a busy machine."""
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]!r}")
    return elapsed, children_cpu() - cpu


@contextlib.contextmanager
def redis_server(run: Path) -> Iterator[None]:
    """The daemon's channel layer (run/redis.sock), as `dispatch up` starts it."""
    from tests.support.stack import redis_argv, wait_for

    sock = run / "redis.sock"
    proc = subprocess.Popen(
        redis_argv(sock), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(sock.exists, timeout=30, what="redis")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def web_server(env: dict[str, str]) -> Iterator[str]:
    """daphne on the bench's home (as `dispatch up` runs it); its URL."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "dispatchsite.runtime.web", "-b", "127.0.0.1"]
    argv += ["-p", str(port), "dispatchsite.asgi:application"]
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_until(healthy, timeout=60, what="daphne")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench_list(runs: int, lanes: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "run").mkdir(mode=0o700)
        local = base_env(home)
        subprocess.run(
            [sys.executable, "-c", SEED.format(n=lanes)],
            env=local,
            cwd=REPO,
            check=True,
        )
        # The daemon's web server, recorded where `dispatch up` records it:
        # `dispatch <read verb>` goes over REST (dispatchsite.thin); "list,
        # in process" is the path without it.
        stack.enter_context(redis_server(home / "run"))
        url = stack.enter_context(web_server(local))
        state = home / "run" / "supervisor.json"
        state.write_text(json.dumps({"url": url}))
        env = local
        # The first call makes the local CLI token (run/cli-token), the
        # second caches the CLI snapshot.
        for _ in range(2):
            subprocess.run(
                [sys.executable, "-m", "dispatchsite.cli", "list"],
                env=env,
                cwd=REPO,
                capture_output=True,
                check=True,
            )
        listed = subprocess.run(
            [sys.executable, "-m", "dispatchsite.cli", "list"],
            env=env,
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        count = len(json.loads(listed.stdout)["lanes"])
        if count != lanes:
            raise RuntimeError(f"`dispatch list` returned {count} lanes, not {lanes}")
        cli = [sys.executable, "-m", "dispatchsite.cli"]
        send = [*cli, "send", "lane-000", "bench message", "--queue"]
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "django.setup()": [sys.executable, "-c", "import django; django.setup()"],
            "dispatch --help": [*cli, "--help"],
            "dispatch list": [*cli, "list"],
            "list, in process": [*cli, "list"],
            "dispatch send -q": send,
            "send, in process": send,
        }
        envs = {name: env for name in commands}
        envs["list, in process"] = {**env, "DISPATCH_THIN": "0"}
        envs["send, in process"] = {**env, "DISPATCH_THIN": "0"}
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        timed_run(commands["dispatch list"], env)  # warm the page cache
        # Interleaved, so drift on a shared machine hits every row alike.
        for _ in range(runs):
            for name, argv in commands.items():
                wall, used = timed_run(argv, envs[name])
                samples[name].append(wall)
                cpu[name].append(used)
    return {
        "lanes": lanes,
        "runs": runs,
        "seconds": {name: summary(values) for name, values in samples.items()},
        "cpu_seconds": {name: summary(values) for name, values in cpu.items()},
        "target_median_s": LIST_TARGET_S,
        "met": median(samples["dispatch list"]) <= LIST_TARGET_S,
        "send_target_median_s": SEND_CLI_TARGET_S,
        "send_met": median(samples["dispatch send -q"]) <= SEND_CLI_TARGET_S,
    }


# -- (b) REST send vs direct turn/start ---------------------------------------


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


class DirectAppServer:
    """A private app-server driven with dispatch's own AppServerClient."""

    def __init__(self, codex_home: Path, cwd: Path) -> None:
        self.codex_home = codex_home
        self.cwd = cwd
        self.loop = asyncio.new_event_loop()
        self.completed: set[str] = set()
        self.client: Any = None
        self.thread_id = ""

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def on_notification(self, message: dict[str, Any]) -> None:
        if message.get("method") == "turn/completed":
            turn = (message.get("params") or {}).get("turn") or {}
            if turn.get("id"):
                self.completed.add(turn["id"])

    def start(self, codex: str) -> None:
        from lanes.appserver.binary import app_server_argv
        from lanes.appserver.client import AppServerClient
        from tests.support.codex_env import codex_env

        self.client = AppServerClient(
            app_server_argv(codex),
            env=codex_env(self.codex_home),
            cwd=str(self.cwd),
            on_notification=self.on_notification,
            stderr_path=self.codex_home / "app-server.log",
        )
        self.run(self.client.start())
        started = self.run(self.client.request("thread/start", {"cwd": str(self.cwd)}))
        self.thread_id = started["thread"]["id"]

    def send(self, text: str) -> tuple[float, str]:
        params = {
            "threadId": self.thread_id,
            "input": [{"type": "text", "text": text, "text_elements": []}],
            "cwd": str(self.cwd),
        }
        start = time.perf_counter()
        result = self.run(self.client.request("turn/start", params))
        elapsed = time.perf_counter() - start
        return elapsed, result["turn"]["id"]

    def wait_turn(self, turn_id: str, timeout: float = 30.0) -> None:
        async def waiter() -> None:
            deadline = time.monotonic() + timeout
            while turn_id not in self.completed:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"direct turn {turn_id} did not complete")
                await asyncio.sleep(0.005)

        self.run(waiter())

    def close(self) -> None:
        if self.client is not None:
            self.run(self.client.close())
        self.loop.close()


def bench_send(sends: int, warmup: int) -> dict[str, Any]:
    import httpx

    from tests.support.codex_env import codex_binary, write_codex_home
    from tests.support.stack import Stack, mock_responses_process

    codex = codex_binary()
    if codex is None:
        return {"skipped": "the codex binary is not installed"}
    with (
        tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmp,
        mock_responses_process(Path(tmp)) as port,
    ):
        root = Path(tmp)
        base_url = f"http://127.0.0.1:{port}/v1"
        stack = Stack(root / "stack", codex="real", mock_base_url=base_url)
        direct_home = root / "direct-codex"
        write_codex_home(direct_home, base_url=base_url)
        direct = DirectAppServer(direct_home, root)
        try:
            stack.start(web=True)
            direct.start(codex)
            token = stack.cli_ok("token", "create", "bench")["token"]
            http = httpx.Client(
                base_url=f"{stack.web_url}/api/v1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            created = http.post(
                "/lanes", json={"name": "bench", "cwd": str(root), "send": False}
            )
            created.raise_for_status()
            lane = created.json()

            def rest_send(i: int) -> float:
                start = time.perf_counter()
                response = http.post(
                    f"/lanes/{lane['ref']}/send", json={"text": f"rest {i}"}
                )
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                turn_id = response.json()["turn_id"]
                stack.wait_lane(
                    lane["id"],
                    lambda row: (
                        row["latest_turn_id"] == turn_id
                        and row["latest_turn_status"] == "completed"
                        and not row["active_turn_id"]
                    ),
                    timeout=30,
                    what=f"REST turn {turn_id}",
                )
                return elapsed

            def direct_send(i: int) -> float:
                elapsed, turn_id = direct.send(f"direct {i}")
                direct.wait_turn(turn_id)
                return elapsed

            def timed_get(path: str) -> float:
                start = time.perf_counter()
                response = http.get(path)
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                return elapsed

            rest: list[float] = []
            plain: list[float] = []
            health: list[float] = []
            show: list[float] = []
            for i in range(warmup + sends):
                r, d = rest_send(i), direct_send(i)
                h = timed_get("/health")
                s = timed_get(f"/lanes/{lane['ref']}")
                if i >= warmup:
                    rest.append(r)
                    plain.append(d)
                    health.append(h)
                    show.append(s)
            http.close()
        finally:
            direct.close()
            stack.stop()
    ms = lambda values: [v * 1000 for v in values]  # noqa: E731
    rest_ms, direct_ms = ms(rest), ms(plain)
    diffs = [r - d for r, d in zip(rest_ms, direct_ms, strict=True)]
    overhead = median(rest_ms) - median(direct_ms)
    return {
        "sends": sends,
        "warmup": warmup,
        "codex": codex,
        "milliseconds": {
            "rest_send": summary(rest_ms),
            "direct_turn_start": summary(direct_ms),
            "paired_difference": summary(diffs),
            "rest_health": summary(ms(health)),
            "rest_show_lane": summary(ms(show)),
        },
        "overhead_ms": overhead,
        "ratio": median(rest_ms) / median(direct_ms),
        "budget_ms": SEND_BUDGET_MS,
        "met": overhead <= SEND_BUDGET_MS,
    }


# -- report -------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in report["loadavg_before"])
    lines = [f"{report['cpus']} CPUs, load average before: {load}", ""]
    listing = report.get("list")
    if listing:
        rows = listing["seconds"]
        floor = rows["python -c pass"]["median"]
        lines.append(f"(a) wall time, {listing['runs']} runs, {listing['lanes']} lanes")
        lines.append(
            f"{'command':<18}{'median s':>10}{'min s':>9}{'p90 s':>9}{'x python':>10}"
            f"{'cpu s':>8}"
        )
        for name, row in rows.items():
            lines.append(
                f"{name:<18}{row['median']:>10.3f}{row['min']:>9.3f}{row['p90']:>9.3f}"
                f"{row['median'] / floor:>10.1f}"
                f"{listing['cpu_seconds'][name]['median']:>8.3f}"
            )
        verdict = "met" if listing["met"] else "NOT met"
        lines.append(f"target: dispatch list median <= {LIST_TARGET_S} s: {verdict}")
        verdict = "met" if listing["send_met"] else "NOT met"
        lines.append(
            f"target: dispatch send median <= {SEND_CLI_TARGET_S} s: {verdict}"
        )
        lines.append("")
    send = report.get("send")
    if send and "skipped" not in send:
        rows = send["milliseconds"]
        lines.append(
            f"(b) latency, {send['sends']} sends each (after {send['warmup']} "
            "warm-up), real codex + mock Responses"
        )
        lines.append(f"{'measure':<22}{'median ms':>11}{'min ms':>9}{'p90 ms':>9}")
        for name, row in rows.items():
            lines.append(
                f"{name:<22}{row['median']:>11.2f}{row['min']:>9.2f}{row['p90']:>9.2f}"
            )
        verdict = "met" if send["met"] else "NOT met"
        lines.append(
            f"REST overhead (median diff) {send['overhead_ms']:.2f} ms, ratio "
            f"{send['ratio']:.2f}x; budget {SEND_BUDGET_MS:g} ms: {verdict}"
        )
    elif send:
        lines.append(f"(b) skipped: {send['skipped']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="CLI runs per command")
    parser.add_argument("--lanes", type=int, default=100)
    parser.add_argument("--sends", type=int, default=30, help="measured sends per side")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        # Other work on the machine skews every row; worth knowing when
        # comparing runs.
        "loadavg_before": os.getloadavg(),
    }
    if not args.skip_list:
        report["list"] = bench_list(args.runs, args.lanes)
    if not args.skip_rest:
        report["send"] = bench_send(args.sends, args.warmup)
    report["loadavg_after"] = os.getloadavg()
    print(table(report))
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
