"""Scale rows: 0, 100 and 1,000 registered lanes, side by side in one run.

One stack per lane count (redis, worker on the fake app-server, daphne), all
running at once, measured in interleaved rounds so drift on a shared machine
hits every row alike. The 0-lane stack is the floor of each row.

- `dispatch list` wall time (a fresh interpreter per run, daemon running:
  the thin CLI over REST), beside `python -c pass` and the same call in
  process (`DISPATCH_THIN=0`, the path without a daemon);
- `dispatch send LANE TEXT` wall time on the 100-lane stack, thin and in
  process, each call on a fresh idle lane, so each starts a turn on the
  fake app-server (the worker answers `turn/start` before the CLI exits);
- `GET /api/v1/lanes` latency (keep-alive client), whole and one page of 100
  (the first, and the last through `after`), beside `GET /api/v1/health` on
  the same server and the 0-lane list;
- worker and web RSS (VmRSS of each process; the app-server is its own
  process and not counted) after the rounds.

Targets: 1,000 lanes `dispatch list` <= 0.25 s; `GET /api/v1/lanes?page_size=100`
p50 <= 20 ms; `dispatch send` <= 0.2 s.
No assertions: this reports, CI does not gate on it.

    .venv/bin/python bench/bench_scale.py [--rounds 15] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COUNTS = (0, 100, 1000)
# REST pages of this many lanes (`GET /api/v1/lanes?page_size=&after=`).
PAGE = 100
# The stack whose lanes `dispatch send` is timed on.
SEND_AT = 100
SEND_TARGET_S = 0.2
LIST_TARGET_S = 0.25
API_TARGET_MS = 20.0

SEED = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from lanes.services import lane_register
for i in range({n}):
    lane_register(thread_id=f"scale-thread-{{i:05d}}", title=f"lane-{{i:04d}}",
                  source="own", cwd=f"/srv/scale/{{i}}", host="{host}")
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
        "min": min(values),
        "n": len(values),
    }


def seeded_db(root: Path, lanes: int, host: str) -> Path:
    """A migrated database holding `lanes` lanes owned by `host`."""
    home = root / f"seed-{lanes}"
    home.mkdir(parents=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISPATCH_", "CODEX_", "DJANGO_"))
    }
    env.update(
        DISPATCH_HOME=str(home),
        DJANGO_SETTINGS_MODULE="dispatchsite.settings",
        PYTHONPATH=str(REPO),
    )
    subprocess.run(
        [sys.executable, "-c", SEED.format(n=lanes, host=host)],
        env=env,
        cwd=REPO,
        check=True,
    )
    return home / "dispatch.sqlite3"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tail_after(client: Any) -> str:
    """The ref after which the roster's last page starts."""
    refs = [row["ref"] for row in client.get("/lanes").json()["lanes"]]
    return str(refs[-PAGE - 1])


def new_lanes(client: Any, cwd: Path, count: int) -> list[str]:
    """Refs of `count` new idle lanes (no first turn)."""
    refs = []
    for n in range(count):
        response = client.post(
            "/lanes", json={"name": f"send-{n:03d}", "cwd": str(cwd), "send": False}
        )
        response.raise_for_status()
        refs.append(str(response.json()["ref"]))
    return refs


def wall(argv: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]!r}")
    return elapsed, done.stdout


def bench(rounds: int) -> dict[str, Any]:
    import httpx

    from tests.support.stack import HOST, Stack

    with tempfile.TemporaryDirectory(prefix="dispatch-scale-") as tmp:
        root = Path(tmp)
        stacks: dict[int, Stack] = {}
        clients: dict[int, httpx.Client] = {}
        try:
            for n in COUNTS:
                stack = Stack(root / f"s{n}", template_db=seeded_db(root, n, HOST))
                stacks[n] = stack.start(web=True)
                # Where `dispatch up` records its web server: with it,
                # `dispatch list` goes over REST without Django (dispatchsite.thin).
                (stack.run_dir / "supervisor.json").write_text(
                    json.dumps({"url": stack.web_url})
                )
                token = stack.cli_ok("token", "create", "bench")["token"]
                clients[n] = httpx.Client(
                    base_url=f"{stack.web_url}/api/v1",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
            cli = [sys.executable, "-m", "dispatchsite.cli", "list"]
            in_process = {
                n: {**stack.env, "DISPATCH_THIN": "0"} for n, stack in stacks.items()
            }
            for n, stack in stacks.items():  # token, snapshot, caches; the counts
                for env in (stack.env, stack.env, in_process[n]):
                    _elapsed, out = wall(cli, env)
                    listed = len(json.loads(out)["lanes"])
                    served = len(clients[n].get("/lanes").json()["lanes"])
                    if listed != n or served != n:
                        raise RuntimeError(f"{n} lanes: list {listed}, REST {served}")
            rows: dict[str, list[float]] = {"python -c pass (s)": []}
            for n in COUNTS:
                rows[f"dispatch list, {n} lanes (s)"] = []
                rows[f"dispatch list in process, {n} lanes (s)"] = []
                rows[f"GET /health, {n} lanes (ms)"] = []
                rows[f"GET /lanes, {n} lanes (ms)"] = []
                rows[f"GET /lanes?page_size={PAGE}, {n} lanes (ms)"] = []
            # The last page of the big roster: `after` costs one lookup more.
            last_page = (
                f"/lanes?page_size={PAGE}&after={tail_after(clients[max(COUNTS)])}"
            )
            rows[f"GET last page, {max(COUNTS)} lanes (ms)"] = []
            # `dispatch send` from the shell on the 100-lane stack, each on a
            # fresh idle lane (a send starts a turn: the next would find it
            # busy), thin and in process in turn.
            send_stack, send_client = stacks[SEND_AT], clients[SEND_AT]
            fresh = iter(new_lanes(send_client, send_stack.root, 2 * rounds))
            send_rows = {
                f"dispatch send, {SEND_AT} lanes (s)": send_stack.env,
                f"dispatch send in process, {SEND_AT} lanes (s)": in_process[SEND_AT],
            }
            for label in send_rows:
                rows[label] = []
            floor_env = stacks[0].env
            for _ in range(rounds):
                rows["python -c pass (s)"].append(
                    wall([sys.executable, "-c", "pass"], floor_env)[0]
                )
                for n, stack in stacks.items():
                    rows[f"dispatch list, {n} lanes (s)"].append(
                        wall(cli, stack.env)[0]
                    )
                    rows[f"dispatch list in process, {n} lanes (s)"].append(
                        wall(cli, in_process[n])[0]
                    )
                for label, env in send_rows.items():
                    send = [*cli[:-1], "send", next(fresh), "hello from the shell"]
                    elapsed, out = wall(send, env)
                    if not json.loads(out).get("turn_id"):
                        raise RuntimeError(f"{label}: no turn started: {out!r}")
                    rows[label].append(elapsed)
                for n, client in clients.items():
                    paths = {
                        f"GET /health, {n} lanes (ms)": "/health",
                        f"GET /lanes, {n} lanes (ms)": "/lanes",
                        f"GET /lanes?page_size={PAGE}, {n} lanes (ms)": (
                            f"/lanes?page_size={PAGE}"
                        ),
                    }
                    if n == max(COUNTS):
                        paths[f"GET last page, {n} lanes (ms)"] = last_page
                    for label, path in paths.items():
                        start = time.perf_counter()
                        client.get(path).raise_for_status()
                        rows[label].append((time.perf_counter() - start) * 1000)
            memory = {
                f"{proc} RSS, {n} lanes (MB)": rss_mb(stack.procs[proc].pid)
                for n, stack in stacks.items()
                for proc in ("worker", "web")
            }
        finally:
            for client in clients.values():
                client.close()
            for stack in stacks.values():
                stack.stop()
    big = max(COUNTS)
    list_p50 = summary(rows[f"dispatch list, {big} lanes (s)"])["p50"]
    api_p50 = summary(rows[f"GET /lanes?page_size={PAGE}, {big} lanes (ms)"])["p50"]
    page_target = f"GET /lanes?page_size={PAGE} {big} lanes p50 <= {API_TARGET_MS:g} ms"
    send_p50 = summary(rows[f"dispatch send, {SEND_AT} lanes (s)"])["p50"]
    return {
        "rounds": rounds,
        "timings": {name: summary(values) for name, values in rows.items()},
        "rss_mb": memory,
        "targets": {
            f"dispatch list {big} lanes p50 <= {LIST_TARGET_S} s": list_p50
            <= LIST_TARGET_S,
            page_target: api_p50 <= API_TARGET_MS,
            f"dispatch send p50 <= {SEND_TARGET_S} s": send_p50 <= SEND_TARGET_S,
        },
    }


def table(report: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in report["loadavg_before"])
    lines = [
        f"{report['cpus']} CPUs, load average before: {load}; "
        f"{report['rounds']} interleaved rounds",
        f"{'row':<40}{'p50':>9}{'p90':>9}{'min':>9}",
    ]
    for name, row in report["timings"].items():
        lines.append(
            f"{name:<40}{row['p50']:>9.3f}{row['p90']:>9.3f}{row['min']:>9.3f}"
        )
    lines.append("")
    for name, value in report["rss_mb"].items():
        lines.append(f"{name:<40}{value:>9.1f}")
    lines.append("")
    for name, met in report["targets"].items():
        lines.append(f"target {name}: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "loadavg_before": list(os.getloadavg()),
    }
    report.update(bench(args.rounds))
    report["loadavg_after"] = list(os.getloadavg())
    print(table(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
