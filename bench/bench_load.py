"""Load: many lanes turning at once, websocket watchers and a REST mix, together.

One stack (tests/support/stack.py: a private Redis, `dispatch worker`,
daphne) with either the real codex app-server against the mock Responses
server (`--codex real`) or the fake app-server (`--codex fake`). `--lanes`
lanes are created over REST, `--watchers` websockets each follow every lane
on `/ws/events` from seq 0, then every lane gets a slow turn at once (the
`[[slow:SEC]]` directive: 20 deltas SEC apart, understood by both the mock
and the fake) while `--connections` keep-alive connections offer `--rate`
REST requests/s for `--seconds` s (bench/load_clients.py): get, list,
journal page (`watch --after`), queue, transcript, health and `send --queue`
(whose turns keep the lanes busy).

Reported: HTTP statuses (5xx and transport errors must be 0), REST latency
p50/p99 per kind, requests sent late or never (a saturated server), each
watcher's seqs against the journal (lost and
duplicated must be 0), journal lag (frame receipt minus the row's
`received_at`: worker read -> commit -> Redis -> daphne -> client), peak RSS
(VmHWM) of the worker, daphne, the app-server and Redis, the achieved rate
and the load average. Exits 1 when a 5xx, a transport error, a lost or a
duplicated event was seen, or a turn never ended: `.ci/run` runs `--short`.

    .venv/bin/python bench/bench_load.py [--codex real|fake] [--lanes 100]
        [--watchers 50] [--rate 200] [--seconds 60] [--connections 32]
        [--turn-seconds 30] [--json-out FILE]
    .venv/bin/python bench/bench_load.py --short    # 20 lanes, 10 watchers, 50/s, 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.load_clients import (  # noqa: E402 (after the path insert)
    CONNECTIONS,
    WATCHERS_PER_PROCESS,
    percentile,
    rest_load,
    watcher_main,
)

# -- memory ------------------------------------------------------------------------


def status_kb(pid: int | None, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return 0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """VmRSS every 0.5 s, and VmHWM (the kernel's own peak) at the end."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for name, pid in self.pids.items():
                mb = status_kb(pid, "VmRSS") / 1024
                self.peak_mb[name] = max(self.peak_mb[name], round(mb, 1))

    def report(self) -> dict[str, Any]:
        return {
            "peak_rss_mb": self.peak_mb,
            "vm_hwm_mb": {
                name: round(status_kb(pid, "VmHWM") / 1024, 1)
                for name, pid in self.pids.items()
            },
        }


# -- the run -----------------------------------------------------------------------


def journal(stack: Any) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = collections.defaultdict(list)
    with sqlite3.connect(stack.home / "dispatch.sqlite3", timeout=30) as conn:
        for thread_id, seq in conn.execute(
            "SELECT thread_id, seq FROM lanes_laneevent ORDER BY thread_id, seq"
        ):
            seqs[thread_id].append(seq)
    return seqs


def wait_idle(stack: Any, timeout: float) -> tuple[float, int]:
    """Seconds until no lane has an active turn or a pending queued message."""
    began = time.monotonic()
    busy = -1
    while time.monotonic() - began < timeout:
        busy = (
            stack.query(
                "SELECT count(*) FROM lanes_lane WHERE active_turn_id IS NOT NULL"
                " AND active_turn_id != ''"
            )[0][0]
            + stack.query(
                "SELECT count(*) FROM lanes_queuedmessage"
                " WHERE status IN ('pending', 'sending')"
            )[0][0]
        )
        if busy == 0:
            return time.monotonic() - began, 0
        time.sleep(0.5)
    return time.monotonic() - began, busy


def run(args: argparse.Namespace, root: Path, mock_port: int | None) -> dict[str, Any]:
    import httpx

    from tests.support.stack import Stack

    stack = Stack(
        root / "stack",
        codex=args.codex,
        mock_base_url=f"http://127.0.0.1:{mock_port}/v1" if mock_port else None,
    )
    load_before = os.getloadavg()[0]
    context = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    try:
        stack.start()
        stack.start_web(processes=args.web_processes)
        web_url = str(stack.web_url)
        token = stack.cli_ok("token", "create", "bench")["token"]
        http = httpx.Client(
            base_url=f"{web_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        began = time.monotonic()
        lanes = []
        for n in range(args.lanes):
            response = http.post(
                "/lanes",
                json={"name": f"load-{n:03d}", "cwd": str(root), "send": False},
            )
            response.raise_for_status()
            lanes.append(response.json())
        http.close()
        create_seconds = time.monotonic() - began
        url = (
            web_url.replace("http://", "ws://")
            + "/ws/events?after=0&"
            + "&".join(f"lane={lane['ref']}" for lane in lanes)
        )
        finish = context.Event()
        targets = root / "targets.json"
        results = context.Queue()
        left = args.watchers
        while left:
            count = min(WATCHERS_PER_PROCESS, left)
            left -= count
            ready = context.Event()
            proc = context.Process(
                target=watcher_main,
                args=(url, token, count, ready, finish, targets, args.grace, results),
            )
            proc.start()
            if not ready.wait(120):
                raise RuntimeError("watchers did not connect")
            procs.append(proc)
        webs = {
            name: proc.pid
            for name, proc in stack.procs.items()
            if name.startswith("web")
        }
        sampler = RssSampler(
            {
                "worker": stack.procs["worker"].pid,
                **webs,
                "app-server": stack.worker_state().get("app_server_pid"),
                "redis": stack.procs["redis"].pid,
            }
        )
        sampler.start()
        groups = {name: [pid] for name, pid in sampler.pids.items() if name not in webs}
        groups["web"] = list(webs.values())
        groups |= {"watchers": [p.pid for p in procs], "load client": [os.getpid()]}
        cpu_before = {k: sum(map(cpu_seconds, v)) for k, v in groups.items()}
        # Every lane's turn at once, each 20 deltas over `--turn-seconds`.
        slow = f"[[slow:{args.turn_seconds / 20:g}]]"

        async def start_turns() -> list[int]:
            async with httpx.AsyncClient(
                base_url=f"{web_url}/api/v1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            ) as client:
                sent = await asyncio.gather(
                    *(
                        client.post(
                            f"/lanes/{lane['ref']}/send", json={"text": f"go {slow}"}
                        )
                        for lane in lanes
                    )
                )
                return [response.status_code for response in sent]

        began = time.monotonic()
        turn_statuses = asyncio.run(start_turns())
        turns_started_in = time.monotonic() - began
        active = stack.query(
            "SELECT count(*) FROM lanes_lane"
            " WHERE active_turn_id IS NOT NULL AND active_turn_id != ''"
        )[0][0]
        rest = asyncio.run(
            rest_load(web_url, token, lanes, args.rate, args.seconds, args.connections)
        )
        drained_in, still_busy = wait_idle(stack, args.drain_timeout)
        time.sleep(1)  # trailing status notifications
        cpu = {
            k: round(sum(map(cpu_seconds, v)) - cpu_before[k], 1)
            for k, v in groups.items()
        }
        sampler.stop.set()
        sampler.join()
        memory = sampler.report()
        seqs = journal(stack)
        targets.write_text(json.dumps({t: s[-1] for t, s in seqs.items() if s}))
        finish.set()
        collected = [
            watcher for _ in procs for watcher in results.get(timeout=args.grace + 120)
        ]
        for proc in procs:
            proc.join(timeout=10)
        turns = dict(
            stack.query("SELECT status, count(*) FROM lanes_laneturn GROUP BY status")
        )
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        stack.stop()
    lost = duplicated = 0
    for watcher in collected:
        for thread_id, journaled in seqs.items():
            got = watcher["seqs"].get(thread_id, [])
            duplicated += len(got) - len(set(got))
            lost += len(set(journaled) - set(got))
    lags = [ms for watcher in collected for ms in watcher["lags"]]
    return {
        "codex": args.codex,
        "lanes": args.lanes,
        "watchers": args.watchers,
        "rate": args.rate,
        "web_processes": args.web_processes,
        "seconds": args.seconds,
        "turn_seconds": args.turn_seconds,
        "cpu_cores": os.cpu_count(),
        "loadavg_1m": {
            "before": round(load_before, 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "lanes_created_in_s": round(create_seconds, 2),
        "turn_starts": dict(collections.Counter(str(s) for s in turn_statuses)),
        "turn_starts_in_s": round(turns_started_in, 2),
        "turns_active_after_start": active,
        "rest": rest,
        "drained_in_s": round(drained_in, 1),
        "still_busy": still_busy,
        "turn_rows": turns,
        "events_journaled": sum(len(s) for s in seqs.values()),
        "frames_received": sum(len(v) for w in collected for v in w["seqs"].values()),
        "lost": lost,
        "duplicated": duplicated,
        "journal_lag_ms": {
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": percentile(lags, 100),
        },
        # From the turns' start to the end of the drain; the rest of the
        # machine's load shows in loadavg_1m.
        "cpu_seconds": cpu,
        **memory,
    }


def failures(report: dict[str, Any]) -> list[str]:
    rest = report["rest"]
    found = []
    if rest["status_5xx"]:
        found.append(f"{rest['status_5xx']} responses were 5xx")
    if rest["transport_errors"]:
        found.append(f"{rest['transport_errors']} requests failed in transport")
    if report["lost"] or report["duplicated"]:
        found.append(f"{report['lost']} events lost, {report['duplicated']} duplicated")
    if report["still_busy"]:
        found.append(f"{report['still_busy']} turns or queued messages never ended")
    if any(not s.startswith("2") for s in report["turn_starts"]):
        found.append(f"turn starts answered {report['turn_starts']}")
    return found


def table(report: dict[str, Any]) -> str:
    rest = report["rest"]
    lat = rest["latency_ms"]
    rows = [
        ("codex", report["codex"]),
        ("lanes / watchers", f"{report['lanes']} / {report['watchers']}"),
        ("web processes", report["web_processes"]),
        (
            "turns active after start",
            f"{report['turns_active_after_start']} (starts {report['turn_starts']}"
            f" in {report['turn_starts_in_s']} s)",
        ),
        (
            "REST offered / sent / answered per s",
            f"{rest['offered_per_second']:g} / {rest['sent_per_second']}"
            f" / {rest['completed_per_second']}"
            f" for {report['seconds']:g} s",
        ),
        ("REST statuses", rest["statuses"]),
        ("REST left unsent at the deadline", rest["unsent_at_deadline"]),
        (
            "REST sent late p50 / p99 ms",
            "{p50} / {p99}".format(**rest["sent_late_ms"]),
        ),
        (
            "REST 5xx / transport errors",
            f"{rest['status_5xx']} / {rest['transport_errors']}",
        ),
        (
            "REST latency p50 / p99 / max ms",
            f"{lat['all']['p50']} / {lat['all']['p99']} / {lat['all']['max']}",
        ),
        *(
            (f"  {kind} p50 / p99 ms (n)", f"{v['p50']} / {v['p99']} ({v['n']})")
            for kind, v in lat.items()
            if kind != "all"
        ),
        (
            "events journaled / frames received",
            f"{report['events_journaled']} / {report['frames_received']}",
        ),
        ("lost / duplicated", f"{report['lost']} / {report['duplicated']}"),
        (
            "journal lag p50 / p99 / max ms",
            " / ".join(str(v) for v in report["journal_lag_ms"].values()),
        ),
        (
            "drained after load (s)",
            f"{report['drained_in_s']} (still busy {report['still_busy']})",
        ),
        ("cpu seconds, turns start to drained", report["cpu_seconds"]),
        ("peak RSS MB (sampled)", report["peak_rss_mb"]),
        ("VmHWM MB", report["vm_hwm_mb"]),
        (
            "load average 1m",
            f"{report['loadavg_1m']['before']} -> {report['loadavg_1m']['after']}"
            f" ({report['cpu_cores']} cores)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    from tests.support.codex_env import codex_binary
    from tests.support.stack import mock_responses_process

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--codex",
        choices=("real", "fake"),
        default=None,
        help="default: real if installed",
    )
    parser.add_argument("--lanes", type=int, default=100)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="REST requests/s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--web-processes",
        type=int,
        default=1,
        help="daphne processes sharing the port (DISPATCH_WEB_PROCESSES)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help="REST keep-alive connections, one request in flight on each",
    )
    parser.add_argument(
        "--turn-seconds",
        type=float,
        default=30.0,
        help="length of each lane's slow turn",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="a watcher gives up after this many idle seconds",
    )
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument(
        "--short", action="store_true", help="20 lanes, 10 watchers, 50/s for 10 s"
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    if args.short:
        args.lanes, args.watchers, args.rate, args.seconds = 20, 10, 50.0, 10.0
        args.turn_seconds = min(args.turn_seconds, 8.0)
    if args.codex is None:
        args.codex = "real" if codex_binary() else "fake"
    with tempfile.TemporaryDirectory(prefix="dispatch-load-") as tmp:
        root = Path(tmp)
        if args.codex == "real":
            with mock_responses_process(root) as port:
                report = run(args, root, port)
        else:
            report = run(args, root, None)
    print(table(report))
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    found = failures(report)
    for failure in found:
        print(f"bench_load: FAIL: {failure}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
