"""Journal ingestion throughput: events/s into SQLite, with a watcher attached.

(a) In-process: `lanes.journal.writer.journal_write_batch` (which runs the item
    indexer in the same transaction) called with realistic app-server
    notifications in batches, as the worker does, while a watcher thread
    pages the journal the way the `watch` op does (`lanes.journal.reader.journal_page`
    every 100 ms). Rows: journal + index, and journal alone (indexer off),
    at the worker's batch size and smaller ones.
(b) End to end: a stack (private Redis + `dispatch worker`) whose
    app-server is bench/firehose_appserver.py: `dispatch new --text go`
    makes it emit N notifications for that lane as fast as it can write
    them. Measured from its first write to the moment the journal holds
    all N rows (polled with sqlite3), with the same kind of watcher.

Target: >= 20,000 events/s sustained (the seed tool managed 550-760/s).
Prints a table and a JSON document (`--json-out FILE` also writes it).
No assertions: this reports, CI does not gate on it.

    .venv/bin/python bench/bench_journal.py [--events 200000] [--e2e-events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET = 20_000
SEED_RANGE = "550-760"
LANES = 20
WORDS = (
    "the parser fails on unicode input so we add a test and fix the tokenizer "
    "then run pytest again and check the diff before committing the change"
).split()


# -- realistic notifications ------------------------------------------------------


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def turn_notifications(
    rng: random.Random, thread_id: str, n: int
) -> list[dict[str, Any]]:
    """One turn as codex 0.169 streams it: deltas dominate, as in real use."""
    turn = f"turn-{thread_id[-6:]}-{n}"
    now_ms = 1796000000000 + n * 1000
    user = {
        "type": "userMessage",
        "id": f"u-{turn}",
        "clientId": None,
        "content": [{"type": "text", "text": text(rng, 30), "text_elements": []}],
    }
    shell = {
        "type": "commandExecution",
        "id": f"call-{turn}",
        "command": "/bin/bash -lc 'pytest -q'",
        "cwd": "/work/project",
        "processId": "1414",
        "source": "unifiedExecStartup",
        "status": "inProgress",
        "commandActions": [{"type": "unknown", "command": "pytest -q"}],
        "aggregatedOutput": None,
        "exitCode": None,
        "durationMs": None,
        "startedAtMs": now_ms,
        "completedAtMs": None,
    }
    agent = {"type": "agentMessage", "id": f"msg-{turn}", "text": "", "phase": None}
    base = {"threadId": thread_id, "turnId": turn}

    def note(method: str, **params: Any) -> dict[str, Any]:
        return {"method": method, "params": {**base, **params}, "emittedAtMs": now_ms}

    events = [
        {
            "method": "thread/status/changed",
            "params": {
                "threadId": thread_id,
                "status": {"type": "active", "activeFlags": []},
            },
        },
        note(
            "turn/started",
            turn={
                "id": turn,
                "status": "inProgress",
                "items": [],
                "startedAt": now_ms // 1000,
            },
        ),
        note("item/started", item=user),
        note("item/completed", item=user),
        note("item/started", item=shell),
    ]
    output = []
    for _ in range(12):
        chunk = text(rng, 12) + "\n"
        output.append(chunk)
        events.append(
            note("item/commandExecution/outputDelta", itemId=shell["id"], delta=chunk)
        )
    events.append(
        note(
            "item/completed",
            item=dict(
                shell,
                status="completed",
                exitCode=0,
                aggregatedOutput="".join(output),
                durationMs=250,
                completedAtMs=now_ms + 250,
            ),
        )
    )
    events.append(note("item/started", item=agent))
    reply = []
    for _ in range(40):
        chunk = text(rng, 3) + " "
        reply.append(chunk)
        events.append(note("item/agentMessage/delta", itemId=agent["id"], delta=chunk))
    events.append(note("item/completed", item=dict(agent, text="".join(reply))))
    events.append(
        note(
            "thread/tokenUsage/updated",
            tokenUsage={
                "total": {
                    "totalTokens": 110 * n,
                    "inputTokens": 100,
                    "cachedInputTokens": 0,
                    "outputTokens": 10,
                    "reasoningOutputTokens": 0,
                },
                "last": {"totalTokens": 110},
                "modelContextWindow": 121600,
            },
        )
    )
    events.append(
        {
            "method": "thread/status/changed",
            "params": {"threadId": thread_id, "status": {"type": "idle"}},
        }
    )
    events.append(
        note(
            "turn/completed",
            turn={
                "id": turn,
                "status": "completed",
                "error": None,
                "items": [],
                "itemsView": "summary",
                "completedAt": now_ms // 1000 + 1,
                "durationMs": 900,
            },
        )
    )
    return events


def firehose(total: int, thread_ids: list[str], seed: int = 7) -> list[dict[str, Any]]:
    """Turns of all lanes interleaved, `total` notifications in all."""
    rng = random.Random(seed)
    empty: list[dict[str, Any]] = []
    streams = [iter(empty) for _ in thread_ids]
    counters = [0] * len(thread_ids)
    out: list[dict[str, Any]] = []
    while len(out) < total:
        i = rng.randrange(len(thread_ids))
        try:
            out.append(next(streams[i]))
        except StopIteration:
            counters[i] += 1
            streams[i] = iter(turn_notifications(rng, thread_ids[i], counters[i]))
    return out


# -- watcher --------------------------------------------------------------------------


class Watcher(threading.Thread):
    """Pages one lane's journal every 100 ms, as `dispatch watch --after` does."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(daemon=True)
        self.thread_id = thread_id
        self.stop = threading.Event()
        self.seen = 0
        self.polls = 0

    def run(self) -> None:
        from django.db import connection

        from lanes.journal.reader import journal_page

        after = 0
        try:
            while not self.stop.is_set():
                while True:
                    page = journal_page(self.thread_id, after=after, limit=500)
                    self.polls += 1
                    if not page:
                        break
                    after = page[-1].seq
                    self.seen += len(page)
                self.stop.wait(0.1)
        finally:
            connection.close()


# -- (a) in-process -------------------------------------------------------------------


def setup_django(home: Path) -> None:
    os.environ["DISPATCH_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dispatchsite.settings"
    os.environ.setdefault("DISPATCH_HOST", "benchhost")
    home.mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def reset_journal() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("lanes_laneevent", "lanes_laneitem", "lanes_laneturn"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (constant names)


def run_inprocess(
    *, events: list[dict[str, Any]], batch: int, index: bool, watch_thread: str
) -> dict[str, Any]:
    from lanes.journal import indexing
    from lanes.journal import writer as journal

    reset_journal()
    original = journal.index_messages
    if not index:
        journal.index_messages = lambda messages, **kw: indexing.IndexStats()
    counter = journal.SeqCounter()
    watcher = Watcher(watch_thread)
    watcher.start()
    timings = []
    started = time.perf_counter()
    try:
        for start in range(0, len(events), batch):
            chunk = [dict(m) for m in events[start : start + batch]]
            t0 = time.perf_counter()
            journal.journal_write_batch(chunk, counter)
            timings.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
    finally:
        journal.index_messages = original
        time.sleep(0.3)
        watcher.stop.set()
        watcher.join()
    from lanes.models import LaneEvent
    from lanes.models.index import LaneItem

    return {
        "events": len(events),
        "batch": batch,
        "index": index,
        "seconds": round(elapsed, 3),
        "events_per_s": round(len(events) / elapsed),
        "batch_ms_p50": round(statistics.median(timings), 2),
        "batch_ms_p95": round(sorted(timings)[int(len(timings) * 0.95) - 1], 2),
        "journal_rows": LaneEvent.objects.count(),
        "items_indexed": LaneItem.objects.count(),
        "watcher_seen": watcher.seen,
        "watcher_polls": watcher.polls,
    }


# -- (b) end to end through the worker -----------------------------------------


def run_e2e(*, total: int, root: Path) -> dict[str, Any]:
    from tests.support.stack import Stack, wait_for

    stamp = root / "firehose.json"
    wrapper = root / "firehose-codex"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "codex-cli 0.169.0"; exit 0; fi\n'
        f'exec "{sys.executable}" "{REPO / "bench/firehose_appserver.py"}" "$@"\n'
    )
    wrapper.chmod(0o755)
    stack = Stack(
        root / "stack",
        extra_env={
            "DISPATCH_CODEX_BIN": str(wrapper),
            "FIREHOSE_EVENTS": str(total),
            "FIREHOSE_STAMP": str(stamp),
        },
    )
    stack.start()
    try:
        lane = stack.cli_ok("new", "--name", "firehose", "--text", "go")
        thread_id = lane["id"]
        db = sqlite3.connect(stack.home / "dispatch.sqlite3", timeout=20)
        seen = {"rows": 0, "polls": 0}
        stop = threading.Event()

        def watch() -> None:  # the same paging as `dispatch watch --after`
            conn = sqlite3.connect(stack.home / "dispatch.sqlite3", timeout=20)
            after = 0
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT seq FROM lanes_laneevent WHERE thread_id=? AND seq>? "
                    "ORDER BY seq LIMIT 500",
                    (thread_id, after),
                ).fetchall()
                seen["polls"] += 1
                if rows:
                    after = rows[-1][0]
                    seen["rows"] += len(rows)
                else:
                    stop.wait(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def count() -> int:
            return db.execute(
                "SELECT count(*) FROM lanes_laneevent WHERE thread_id=?", (thread_id,)
            ).fetchone()[0]

        wait_for(
            lambda: count() >= total, timeout=max(60.0, total / 500), what="journal"
        )
        done_at = time.time()
        # The watcher pages at its own pace; it must still see every row.
        wait_for(lambda: seen["rows"] >= total, timeout=60, what="the watcher")
        watcher_done_at = time.time()
        stop.set()
        watcher.join()
        marks = json.loads(stamp.read_text())
        items = db.execute(
            "SELECT count(*) FROM lanes_laneitem WHERE thread_id=?", (thread_id,)
        ).fetchone()[0]
        elapsed = done_at - marks["first_write"]
        return {
            "events": total,
            "seconds": round(elapsed, 3),
            "events_per_s": round(total / elapsed),
            "emit_seconds": round(marks["last_write"] - marks["first_write"], 3),
            "journal_lag_after_last_write_s": round(done_at - marks["last_write"], 3),
            "items_indexed": items,
            "watcher_seen": seen["rows"],
            "watcher_caught_up_after_s": round(watcher_done_at - done_at, 3),
            "note": "includes stdout pipe, JSON parsing, the asyncio client and the "
            "worker's batch loop; poll granularity 20 ms",
        }
    finally:
        stack.stop()


# -- report -------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--e2e-events", type=int, default=100_000)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    setup_django(root / "inproc")
    from lanes.services import lane_register

    threads = [f"019a0000-0000-7000-8000-{n:012d}" for n in range(LANES)]
    for n, thread_id in enumerate(threads):
        lane_register(
            thread_id=thread_id,
            title=f"lane{n}",
            source="own",
            cwd="/work/project",
            host="benchhost",
        )
    events = firehose(args.events, threads)
    rows = []
    for batch, index in ((2000, True), (2000, False), (500, True), (100, True)):
        rows.append(
            run_inprocess(
                events=events, batch=batch, index=index, watch_thread=threads[0]
            )
        )
    e2e = None if args.skip_e2e else run_e2e(total=args.e2e_events, root=root)

    print(
        f"\njournal ingestion, SQLite WAL, {os.cpu_count()} cores "
        f"(target >= {TARGET:,}/s; seed tool {SEED_RANGE}/s)\n"
    )
    print(
        f"{'path':<34}{'batch':>6}{'events':>9}{'events/s':>11}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'items':>8}{'watched':>9}"
    )
    for row in rows:
        name = (
            "journal_write_batch + index"
            if row["index"]
            else "journal_write_batch only"
        )
        print(
            f"{name:<34}{row['batch']:>6}{row['events']:>9}{row['events_per_s']:>11,}"
            f"{row['batch_ms_p50']:>9}{row['batch_ms_p95']:>9}{row['items_indexed']:>8}"
            f"{row['watcher_seen']:>9}"
        )
    if e2e:
        print(
            f"{'worker end to end (firehose)':<34}{'auto':>6}{e2e['events']:>9}"
            f"{e2e['events_per_s']:>11,}{'':>9}{'':>9}{e2e['items_indexed']:>8}"
            f"{e2e['watcher_seen']:>9}"
        )
    report = {
        "target_events_per_s": TARGET,
        "seed_events_per_s": SEED_RANGE,
        "cpus": os.cpu_count(),
        "in_process": rows,
        "end_to_end": e2e,
    }
    print("\n" + json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
