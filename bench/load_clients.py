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
from urllib.parse import urlencode, urlsplit

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
                    if n:  # one socket per process samples the lag
                        continue
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


class KeepAlive:
    """One keep-alive HTTP/1.1 connection, one request at a time.

    A few dozen lines of asyncio instead of httpx: the load client shares
    the machine with the server it measures, and httpx spent ~1.6 ms of CPU
    per request here (a sixth of the run's CPU) where this spends a tenth
    of that."""

    def __init__(self, base: str, token: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/") + "/api/v1"
        self.head = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port
            )
        assert self.reader is not None
        data = json.dumps(body).encode() if body is not None else b""
        extra = (
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            if body is not None
            else ""
        )
        text = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self.head}{extra}\r\n"
        try:
            self.writer.write(text.encode() + data)
            status = int((await self.reader.readline()).split()[1])
            length, chunked, close = None, False, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = b"close" in value.lower()
            if chunked:
                content = b""
                while size := int((await self.reader.readline()).strip(), 16):
                    content += await self.reader.readexactly(size + 2)
                    content = content[:-2]
                await self.reader.readline()
            elif length is not None:
                content = await self.reader.readexactly(length)
            else:
                content, close = await self.reader.read(), True
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def rest_load(
    base: str,
    token: str,
    lanes: list[dict[str, Any]],
    rate: float,
    seconds: float,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
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

    async def one(http: KeepAlive, kind: str, ref: str, n: int) -> None:
        nonlocal transport
        began = time.perf_counter()
        try:
            if kind == "get":
                status, content = await http.request("GET", f"/lanes/{ref}")
            elif kind == "list":
                status, content = await http.request("GET", "/lanes")
            elif kind == "journal_page":
                after = cursors[ref]
                # timeout 0: one page now (the default long-polls 10 s)
                page = urlencode({"after": after, "limit": 50, "timeout": 0})
                status, content = await http.request(
                    "GET", f"/lanes/{ref}/watch?{page}"
                )
                if status == 200:
                    cursors[ref] = max(after, json.loads(content)["last_seq"])
            elif kind == "queue":
                status, content = await http.request("GET", f"/lanes/{ref}/queue")
            elif kind == "transcript":
                status, content = await http.request("GET", f"/lanes/{ref}/transcript")
            elif kind == "health":
                status, content = await http.request("GET", "/health")
            else:
                status, content = await http.request(
                    "POST",
                    f"/lanes/{ref}/send",
                    {"text": f"queued {n}", "mode": "queue"},
                )
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
            errors[f"{kind}: {type(error).__name__}"] += 1
            transport += 1
            return
        ms = (time.perf_counter() - began) * 1000
        latency[kind].append(ms)
        if ms > 1000:  # which requests stall, and when in the run
            slow.append((kind, round(began - start, 1), round(ms)))
        statuses[str(status)] += 1
        if status >= 500:
            errors[f"{kind}: {status} {content[:200]!r}"] += 1

    total = int(rate * seconds)
    plan = [
        (rng.choices(kinds, weights)[0], rng.choice(lanes)["ref"]) for _ in range(total)
    ]
    counter = iter(range(total))
    unsent = 0

    async def connection() -> None:
        # Request n is due at n / rate whatever the server does; one that
        # finds every connection busy leaves late, and `waits` says how
        # late (what a client would add on top of the server's latency).
        nonlocal unsent
        http = KeepAlive(base, token)
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
            await one(http, *plan[n], n)
        http.close()

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
