"""The clients of bench/bench_load.py: websocket watchers and the REST mix.

Watchers run WATCHERS_PER_PROCESS sockets per process, each following every
lane on `/ws/events` from seq 0 and keeping every seq it got per lane. The
REST mix runs on `connections` keep-alive connections: request n is due at
n / rate; when every connection is busy it leaves late, and how late is
reported beside the server's latency (a lower achieved rate, not hidden).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

WATCHERS_PER_PROCESS = 10
# Keep-alive connections of the REST client, each sending one request at a time.
CONNECTIONS = 32
# (kind, weight): reads dominate, as with dashboards and agents polling.
MIX = (
    ("get", 30),
    ("list", 10),
    ("journal_page", 25),
    ("queue", 10),
    ("transcript", 5),
    ("health", 5),
    ("send_queue", 15),
)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 2)


# -- watchers (WATCHERS_PER_PROCESS sockets per process) ---------------------------


async def watch_all(
    url: str,
    token: str,
    count: int,
    ready: Any,
    finish: Any,
    targets: Path,
    idle: float,
) -> list[dict[str, Any]]:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"}
    sockets = [
        await connect(url, additional_headers=headers, max_size=None, proxy=None)
        for _ in range(count)
    ]
    ready.set()
    # Rows journaled before the sockets opened arrive as replay: their age
    # is not delivery lag, so only live rows count.
    live_from = time.time()
    seqs: list[dict[str, list[int]]] = [collections.defaultdict(list) for _ in sockets]
    lags: list[float] = []
    last_frame = time.monotonic()

    async def read(n: int) -> None:
        nonlocal last_frame
        with contextlib.suppress(Exception):  # closed by `settle`
            async for raw in sockets[n]:
                now = time.time()
                last_frame = time.monotonic()
                for frame in json.loads(raw)["events"]:
                    seqs[n][frame["thread_id"]].append(frame["seq"])
                    at = datetime.fromisoformat(frame["received_at"]).timestamp()
                    if at >= live_from:
                        lags.append((now - at) * 1000)

    def complete(want: dict[str, int]) -> bool:
        return all(
            (got.get(thread_id) or [0])[-1] >= last
            for got in seqs
            for thread_id, last in want.items()
        )

    async def settle() -> None:
        # Until the journal's end (written by the driver once the lanes are
        # idle) reached every socket, or nothing came for `idle` seconds: late
        # is not lost; only what never arrives counts as lost.
        while not finish.is_set():
            await asyncio.sleep(0.2)
        want = json.loads(targets.read_text())
        while not complete(want) and time.monotonic() - last_frame < idle:
            await asyncio.sleep(0.2)
        for socket in sockets:
            await socket.close()

    await asyncio.gather(settle(), *(read(n) for n in range(count)))
    return [
        {"seqs": dict(s), "lags": lags if n == 0 else []} for n, s in enumerate(seqs)
    ]


def watcher_main(*args: Any) -> None:
    *watch_args, results = args
    results.put(asyncio.run(watch_all(*watch_args)))


# -- the REST mix ------------------------------------------------------------------


async def rest_load(
    base: str,
    token: str,
    lanes: list[dict[str, Any]],
    rate: float,
    seconds: float,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    import httpx

    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    rng = random.Random(13)
    statuses: collections.Counter[str] = collections.Counter()
    latency: dict[str, list[float]] = collections.defaultdict(list)
    errors: collections.Counter[str] = collections.Counter()
    transport = 0
    cursors: dict[str, int] = collections.defaultdict(int)
    slow: list[tuple[str, float, int]] = []
    start = time.perf_counter()
    waits: list[float] = []
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(
        base_url=f"{base}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        limits=limits,
    ) as http:

        async def one(kind: str, ref: str, n: int) -> None:
            nonlocal transport
            began = time.perf_counter()
            try:
                if kind == "get":
                    response = await http.get(f"/lanes/{ref}")
                elif kind == "list":
                    response = await http.get("/lanes")
                elif kind == "journal_page":
                    after = cursors[ref]
                    # timeout 0: one page now (the default long-polls 10 s)
                    page = {"after": after, "limit": 50, "timeout": 0}
                    response = await http.get(f"/lanes/{ref}/watch", params=page)
                    if response.status_code == 200:
                        cursors[ref] = max(after, response.json()["last_seq"])
                elif kind == "queue":
                    response = await http.get(f"/lanes/{ref}/queue")
                elif kind == "transcript":
                    response = await http.get(f"/lanes/{ref}/transcript")
                elif kind == "health":
                    response = await http.get("/health")
                else:
                    response = await http.post(
                        f"/lanes/{ref}/send",
                        json={"text": f"queued {n}", "mode": "queue"},
                    )
            except httpx.HTTPError as error:
                errors[f"{kind}: {type(error).__name__}"] += 1
                transport += 1
                return
            ms = (time.perf_counter() - began) * 1000
            latency[kind].append(ms)
            if ms > 1000:  # which requests stall, and when in the run
                slow.append((kind, round(began - start, 1), round(ms)))
            statuses[str(response.status_code)] += 1
            if response.status_code >= 500:
                errors[f"{kind}: {response.status_code} {response.text[:200]}"] += 1

        total = int(rate * seconds)
        plan = [
            (rng.choices(kinds, weights)[0], rng.choice(lanes)["ref"])
            for _ in range(total)
        ]
        counter = iter(range(total))
        unsent = 0

        async def connection() -> None:
            # Request n is due at n / rate whatever the server does; one that
            # finds every connection busy leaves late, and `waits` says how
            # late (what a client would add on top of the server's latency).
            nonlocal unsent
            for n in counter:
                due = start + n / rate
                if time.perf_counter() > start + seconds:
                    # The run's time is up: what the server never got to is
                    # counted, not sent later (a saturated server would
                    # otherwise stretch the run without bound).
                    unsent += 1
                    continue
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                waits.append((time.perf_counter() - due) * 1000)
                await one(*plan[n], n)

        await asyncio.gather(*(connection() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    every = [ms for values in latency.values() for ms in values]
    return {
        "requests": total,
        "unsent_at_deadline": unsent,
        "offered_per_second": rate,
        "sent_per_second": round((total - unsent) / seconds, 1),
        "completed_per_second": round(len(every) / seconds, 1),
        "last_answer_after_s": round(elapsed, 1),
        "connections": connections,
        "sent_late_ms": {"p50": percentile(waits, 50), "p99": percentile(waits, 99)},
        "statuses": dict(statuses),
        "status_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "transport_errors": transport,
        "errors": dict(errors.most_common(10)),
        "over_1s": {"count": len(slow), "first": slow[:20]},
        "latency_ms": {
            "all": {
                "p50": percentile(every, 50),
                "p99": percentile(every, 99),
                "max": percentile(every, 100),
            }
        }
        | {
            kind: {
                "n": len(v),
                "p50": percentile(v, 50),
                "p99": percentile(v, 99),
                "max": percentile(v, 100),
            }
            for kind, v in sorted(latency.items())
        },
    }
