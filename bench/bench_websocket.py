"""Benchmark: websocket fan-out latency, app-server line to watcher frame.

The real pieces run as separate processes: a private Redis, `dispatch
worker` and daphne (tests/support/stack.py), with the fake app-server in
its firehose mode emitting `item/agentMessage/delta` on `--lanes` threads at
`--rate` per thread per second, each stamped with a wall-clock `sentAt`.
`--watchers` client processes each follow every lane, so every event reaches
every watcher: over one socket each (`/ws/events?lane=...`, all lanes) and,
in a second run on a fresh stack, over one socket per lane
(`/ws/lanes/<ref>/events`, watchers x lanes sockets); `--sockets` picks one.
Latency is `time.time()` at frame receipt minus `sentAt`: app-server write
-> worker read -> journal commit -> Redis pub/sub -> the web process's
hub -> daphne -> client. Afterwards each watcher's seqs per lane are checked
against the journal: none lost, none twice.

The journal's own lag is read back from the database afterwards: each
row's `received_at` (the worker read the line) minus its `sentAt` (the
app-server wrote it); the time the stream took beside the time the worker
needed to journal all of it says whether the worker kept up.

Targets: p99 <= 50 ms at 20 lanes x 100 events/s (the default run);
p99 <= 100 ms at 100 lanes x 100 events/s (`--lanes 100 --p99-target 100`);
zero lost or duplicated seq either way. Prints a table and a JSON document
(`--json-out FILE` also writes it); no assertions.

    .venv/bin/python bench/bench_websocket.py [--lanes 20] [--rate 100]
        [--seconds 10] [--watchers 10] [--sockets watcher|lane|both]
        [--p99-target 50] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

P99_TARGET_MS = 50.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


# -- one watcher process -----------------------------------------------------------


async def watch_lanes(
    base_url: str,
    refs: list[str],
    thread_ids: list[str],
    sockets_per: str,
    token: str,
    expected: int,
    idle: float,
    ready: Any,
    start: Any,
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    seqs: dict[str, list[int]] = {thread_id: [] for thread_id in thread_ids}

    last_frame = time.monotonic()

    async def one(socket: Any, frames_wanted: int) -> None:
        nonlocal last_frame
        got = 0
        async for raw in socket:
            received = time.time()
            last_frame = time.monotonic()
            for frame in json.loads(raw)["events"]:  # one document per message
                sent_at = frame["params"].get("sentAt")
                if sent_at is not None:
                    latencies.append((received - sent_at) * 1000)
                seqs[frame["thread_id"]].append(frame["seq"])
                got += 1
            if got >= frames_wanted:
                return

    async def give_up_when_idle(sockets: list[Any]) -> None:
        # Until every event arrived, or none did for `idle` seconds: a slow
        # stream is late, not lost; only what never comes counts as lost.
        while time.monotonic() - last_frame < idle:
            await asyncio.sleep(0.5)
        for socket in sockets:
            await socket.close()

    headers = {"Authorization": f"Bearer {token}"}
    url = base_url.replace("http://", "ws://")
    if sockets_per == "lane":
        paths = [f"/ws/lanes/{ref}/events?after=0" for ref in refs]
    else:
        paths = ["/ws/events?after=0&" + "&".join(f"lane={ref}" for ref in refs)]
    sockets = [
        await connect(url + path, additional_headers=headers, max_size=None, proxy=None)
        for path in paths
    ]
    ready.set()
    start.wait()
    last_frame = time.monotonic()
    per_socket = expected * len(refs) // len(sockets)
    watchdog = asyncio.create_task(give_up_when_idle(sockets))
    await asyncio.gather(*(one(socket, per_socket) for socket in sockets))
    watchdog.cancel()
    for socket in sockets:
        await socket.close()
    return {"latencies": latencies, "seqs": seqs}


def watcher_main(*args: Any) -> None:
    *watch_args, results = args
    results.put(asyncio.run(watch_lanes(*watch_args)))


# -- the run -----------------------------------------------------------------------


def register_lanes(stack: Any, count: int) -> tuple[list[str], list[str], str]:
    """Lanes for the firehose threads, and a token; straight into the DB."""
    os.environ.update(stack.env)
    import django

    django.setup()
    from lanes.services import lane_register
    from lanes.tokens import api_token_create

    thread_ids = [f"firehose-{n:03d}" for n in range(count)]
    refs = [
        lane_register(
            thread_id=thread_id,
            title=thread_id,
            source="own",
            cwd=str(stack.root),
            host="testhost",
        ).ref
        for thread_id in thread_ids
    ]
    return thread_ids, refs, api_token_create(name="bench")[1]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (and its reaped children)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def component_pids(stack: Any, watchers: list[Any]) -> dict[str, list[int]]:
    pids = {name: [proc.pid] for name, proc in stack.procs.items()}
    pids["app-server"] = [stack.worker_state().get("app_server_pid")]
    pids["watchers"] = [proc.pid for proc in watchers]
    return pids


def cpu_snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    return {
        name: sum(cpu_seconds(pid) for pid in group) for name, group in pids.items()
    }


def journal_seqs(stack: Any, thread_id: str) -> list[int]:
    with sqlite3.connect(stack.home / "dispatch.sqlite3", timeout=20) as conn:
        rows = conn.execute(
            "SELECT seq FROM lanes_laneevent WHERE thread_id=? ORDER BY seq",
            (thread_id,),
        )
        return [seq for (seq,) in rows]


def journal_lag(stack: Any) -> dict[str, float | None]:
    """App-server write -> worker read, per journaled delta, and how long
    the worker took to journal the whole stream (first write to last read)."""
    with sqlite3.connect(stack.home / "dispatch.sqlite3", timeout=20) as conn:
        rows = conn.execute(
            "SELECT received_at, json_extract(params, '$.sentAt') FROM "
            "lanes_laneevent WHERE json_extract(params, '$.sentAt') IS NOT NULL"
        ).fetchall()
    read = [datetime.fromisoformat(at).timestamp() for at, _sent in rows]
    lags = [(at - sent) * 1000 for at, (_r, sent) in zip(read, rows, strict=True)]
    sent = [sent for _at, sent in rows]
    return {
        "read_lag_p50_ms": round(percentile(lags, 50), 2) if lags else None,
        "read_lag_p99_ms": round(percentile(lags, 99), 2) if lags else None,
        "read_lag_max_ms": round(max(lags), 2) if lags else None,
        "stream_s": round(max(sent) - min(sent), 2) if sent else None,
        "journaled_in_s": round(max(read) - min(sent), 2) if sent else None,
    }


def run(args: argparse.Namespace, sockets_per: str) -> dict[str, Any]:
    from tests.support.stack import Stack

    root = Path(tempfile.mkdtemp(prefix="dispatch-bench-ws-"))
    start_file = root / "firehose.start"
    stack = Stack(
        root,
        codex="fake",
        extra_env={
            "FAKE_APPSERVER_MODE": "firehose",
            "FAKE_APPSERVER_FIREHOSE_LANES": str(args.lanes),
            "FAKE_APPSERVER_FIREHOSE_RATE": str(args.rate),
            "FAKE_APPSERVER_FIREHOSE_SECONDS": str(args.seconds),
            "FAKE_APPSERVER_FIREHOSE_START": str(start_file),
        },
    )
    expected = int(args.rate * args.seconds)
    load_before = os.getloadavg()[0]
    try:
        stack.start(web=True)
        thread_ids, refs, token = register_lanes(stack, args.lanes)
        context = multiprocessing.get_context("spawn")
        start = context.Event()
        results = context.Queue()
        idle = args.seconds + args.grace  # the first frame waits for the start
        watchers = []
        for _n in range(args.watchers):
            ready = context.Event()
            proc = context.Process(
                target=watcher_main,
                args=(
                    stack.web_url,
                    refs,
                    thread_ids,
                    sockets_per,
                    token,
                    expected,
                    idle,
                    ready,
                    start,
                    results,
                ),
            )
            proc.start()
            if not ready.wait(60):
                raise RuntimeError("a watcher did not connect")
            watchers.append(proc)
        pids = component_pids(stack, watchers)
        cpu_before = cpu_snapshot(pids)
        start.set()
        start_file.touch()
        began = time.monotonic()
        collected = [results.get() for _ in watchers]
        elapsed = time.monotonic() - began
        cpu_after = cpu_snapshot(pids)
        for proc in watchers:
            proc.join(timeout=10)
        journals = {t: journal_seqs(stack, t) for t in thread_ids}
        lag = journal_lag(stack)
    finally:
        stack.stop()
    latencies = [ms for result in collected for ms in result["latencies"]]
    lost = duplicated = 0
    for result in collected:
        for thread_id, got in result["seqs"].items():
            duplicated += len(got) - len(set(got))
            lost += len(set(journals[thread_id]) - set(got))
    journaled = sum(len(seqs) for seqs in journals.values())
    return {
        "sockets": sockets_per,
        "websockets": args.watchers * (args.lanes if sockets_per == "lane" else 1),
        "lanes": args.lanes,
        "rate_per_lane": args.rate,
        "seconds": args.seconds,
        "watchers": args.watchers,
        "events_journaled": journaled,
        "events_expected": args.lanes * expected,
        "frames_received": len(latencies),
        "frames_expected": args.lanes * expected * args.watchers,
        "frames_per_second": round(len(latencies) / elapsed, 1) if elapsed else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p90": round(percentile(latencies, 90), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2) if latencies else None,
            "mean": round(statistics.fmean(latencies), 2) if latencies else None,
        },
        "journal": lag,
        # CPU seconds each component used while the stream ran, and cores.
        "cpu_seconds": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after},
        "cpu_cores": os.cpu_count(),
        # Other work on the machine skews every number here; this shows it.
        "loadavg_1m": {
            "before": round(load_before, 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "lost": lost,
        "duplicated": duplicated,
        "target": {"p99_ms": args.p99_target, "lost": 0, "duplicated": 0},
        "meets_target": bool(
            latencies
            and percentile(latencies, 99) <= args.p99_target
            and lost == 0
            and duplicated == 0
            and journaled == args.lanes * expected
        ),
    }


def run_in_child(args: argparse.Namespace, sockets_per: str, results: Any) -> None:
    results.put(run(args, sockets_per))


def run_apart(args: argparse.Namespace, sockets_per: str) -> dict[str, Any]:
    """`run` in a process of its own: Django is set up once per process."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=run_in_child, args=(args, sockets_per, results))
    child.start()
    report = results.get()
    child.join()
    return report


def table(reports: list[dict[str, Any]]) -> str:
    """One column per run, side by side."""

    def cells(report: dict[str, Any]) -> list[str]:
        lat = report["latency_ms"]
        journal = report["journal"]
        return [
            f"{report['websockets']} ({report['watchers']} watchers, "
            f"one per {report['sockets']})",
            f"{report['events_journaled']} / {report['events_expected']}",
            f"{report['frames_received']} / {report['frames_expected']}",
            f"{lat['p50']} / {lat['p90']} ms",
            f"{lat['p99']} / {lat['max']} ms",
            f"{journal['read_lag_p99_ms']} / {journal['read_lag_max_ms']} ms",
            f"{journal['stream_s']} / {journal['journaled_in_s']} s",
            ", ".join(f"{k} {v:g}" for k, v in report["cpu_seconds"].items()),
            f"{report['loadavg_1m']['before']} -> {report['loadavg_1m']['after']}",
            f"{report['lost']} / {report['duplicated']}",
            "yes" if report["meets_target"] else "NO",
        ]

    first = reports[0]
    names = [
        "websockets",
        "events journaled",
        "frames received",
        "latency p50 / p90",
        f"latency p99 / max (target p99 <= {first['target']['p99_ms']:g} ms)",
        "journal read lag p99 / max",
        "stream / journaled in",
        f"cpu seconds ({first['cpu_cores']} cores)",
        "load average 1m",
        "lost / duplicated (target 0 / 0)",
        "meets target",
    ]
    columns = [cells(report) for report in reports]
    width = max(len(name) for name in names)
    lines = [
        f"{first['lanes']} lanes x {first['rate_per_lane']:g} events/s for "
        f"{first['seconds']:g} s; {first['watchers']} watchers, each on every lane"
    ]
    for n, name in enumerate(names):
        lines.append(f"{name:<{width}}  " + "  |  ".join(c[n] for c in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s per lane")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument(
        "--sockets",
        choices=("watcher", "lane", "both"),
        default="both",
        help="one websocket per watcher (/ws/events, all lanes), one per lane "
        "(/ws/lanes/<lane>/events), or a run of each",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=15.0,
        help="a watcher gives up on a lane after this many idle seconds",
    )
    parser.add_argument(
        "--p99-target",
        type=float,
        default=P99_TARGET_MS,
        help="ms, app-server -> frame",
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    modes = ["watcher", "lane"] if args.sockets == "both" else [args.sockets]
    reports = [run_apart(args, mode) for mode in modes]
    print(table(reports))
    print(json.dumps(reports, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(reports, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
