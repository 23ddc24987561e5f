"""Search latency over 1,000,000 indexed items (SQLite FTS5), next to grep -r.

A temporary DISPATCH_HOME is migrated; `--lanes` lanes are registered and
`--items` synthetic items are written into lanes_laneitem (words drawn from a
Zipf distribution over a `--vocab` word vocabulary, 10-60 words per item).
The FTS index is built the way a restore would (triggers off, `rebuild`,
triggers back via `lanes.models.index.fts_ensure`); the build time, the
`optimize` time and the database size are reported.

Queries go through `lanes.history.search.run.search_run`, the code behind
`dispatch search` (ranking, lane lookup, snippets), `--limit 20`, in four
buckets by word frequency (rare / medium / common / very common), plus two-word,
phrase, prefix and lane-filtered queries. The same text is written to one
file per lane and `grep -r -l -i -w WORD` is timed for a sample of the same
words (grep finds files, it does not rank).

Target: p95 <= 100 ms. Prints a table and a JSON document (`--json-out
FILE` also writes it). No assertions: this reports, CI does not gate on it.

    .venv/bin/python bench/bench_search.py [--items 1000000] [--queries 50]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_MS = 100.0
SYLLABLES = [
    a + b
    for a in "bdfgklmnprstvz"
    for b in ("a", "e", "i", "o", "u", "an", "el", "or", "ix", "um")
]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: rng.random())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def setup_django(home: Path) -> None:
    os.environ["DISPATCH_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dispatchsite.settings"
    os.environ.setdefault("DISPATCH_HOST", "benchhost")
    home.mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(
    *, items: int, lanes: int, vocab: list[str], rng: random.Random, text_dir: Path
) -> dict[str, Any]:
    from django.db import connection, transaction

    from lanes.models.index import FTS_TRIGGERS, fts_ensure
    from lanes.services import lane_register

    threads = [f"019b0000-0000-7000-8000-{n:012d}" for n in range(lanes)]
    for n, thread_id in enumerate(threads):
        lane_register(
            thread_id=thread_id,
            title=f"lane{n}",
            source="own",
            cwd=f"/work/repo{n % 50}/pkg",
            host="benchhost",
        )
    weights = [1.0 / (rank + 1) ** 1.07 for rank in range(len(vocab))]
    cum = list(itertools.accumulate(weights))
    with connection.cursor() as cursor:
        for name in FTS_TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
    text_dir.mkdir(parents=True)
    files = {t: open(text_dir / f"{t}.txt", "w") for t in threads}  # noqa: SIM115
    sql = (
        "INSERT INTO lanes_laneitem (thread_id, turn_id, item_id, item_type, role, "
        "tool, status, text, files, payload, bytes, source, created_at, "
        "completed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '[]', NULL, %s, "
        "'sync', %s, NULL)"
    )
    kinds = [
        ("agentMessage", "assistant", ""),
        ("userMessage", "user", ""),
        ("commandExecution", "tool", "shell"),
        ("fileChange", "tool", "apply_patch"),
    ]
    started = time.perf_counter()
    chunk = 20_000
    for base in range(0, items, chunk):
        rows = []
        for n in range(base, min(items, base + chunk)):
            words = rng.choices(vocab, cum_weights=cum, k=rng.randint(10, 60))
            text = " ".join(words)
            thread_id = threads[n % lanes]
            kind, role, tool = kinds[n % 4]
            day = 1 + (n * 28) // items
            rows.append(
                (
                    thread_id,
                    f"turn-{n // 8}",
                    f"item-{n}",
                    kind,
                    role,
                    tool,
                    "completed",
                    text,
                    len(text) + 60,
                    f"2026-11-{day:02d} 12:00:00",
                )
            )
            files[thread_id].write(text + "\n")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    for handle in files.values():
        handle.close()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    fts_ensure()  # triggers back + `rebuild`: the FTS index over every item
    fts_built = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO lanes_laneitem_fts(lanes_laneitem_fts) VALUES ('optimize')"
        )
    optimized = time.perf_counter() - started
    connection.close()
    db = Path(os.environ["DISPATCH_HOME"]) / "dispatch.sqlite3"
    wal = db.with_name(db.name + "-wal")
    return {
        "items": items,
        "lanes": lanes,
        "vocabulary": len(vocab),
        "load_s": round(loaded, 1),
        "fts_build_s": round(fts_built, 1),
        "fts_optimize_s": round(optimized, 1),
        "db_mb": round(
            (db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6
        ),
        "text_mb": round(sum(p.stat().st_size for p in text_dir.iterdir()) / 1e6),
        "threads": threads,
    }


def doc_frequency(word: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM lanes_laneitem_fts WHERE lanes_laneitem_fts MATCH %s",
            [f'"{word}"'],
        )
        return int(cursor.fetchone()[0])


def timed_search(query: str, **params: Any) -> tuple[float, int]:
    from lanes.history.search.run import search_run

    started = time.perf_counter()
    out = search_run(query=query, limit=20, host="benchhost", **params)
    return (time.perf_counter() - started) * 1000, len(out["matches"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--lanes", type=int, default=1000)
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=50, help="per bucket")
    parser.add_argument("--grep-queries", type=int, default=5, help="per bucket")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    rng = random.Random(1234)
    root = Path(tempfile.mkdtemp(prefix="bench-search-"))
    setup_django(root / "home")
    vocab = vocabulary(args.vocab, rng)
    built = build(
        items=args.items, lanes=args.lanes, vocab=vocab, rng=rng, text_dir=root / "text"
    )
    threads = built.pop("threads")
    buckets = {
        "rare (rank 5k-50k)": vocab[5000:],
        "medium (rank 500-5k)": vocab[500:5000],
        "common (rank 50-500)": vocab[50:500],
        "very common (top 50)": vocab[:50],
    }
    qrng = random.Random(99)
    rows: list[dict[str, Any]] = []
    everything: list[float] = []
    grep_rows: list[dict[str, Any]] = []
    for label, pool in buckets.items():
        words = [qrng.choice(pool) for _ in range(args.queries)]
        timed_search(words[0])  # warm the page cache for this bucket's first query
        times = []
        hits = []
        for word in words:
            ms, n = timed_search(word)
            times.append(ms)
            hits.append(n)
        everything += times
        sample_df = [doc_frequency(w) for w in words[:5]]
        rows.append(
            {
                "bucket": label,
                "queries": len(times),
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
                "p99_ms": round(percentile(times, 0.99), 1),
                "max_ms": round(max(times), 1),
                "median_matching_items": int(statistics.median(sample_df)),
            }
        )
        grep_times = []
        for word in words[: args.grep_queries]:
            started = time.perf_counter()
            subprocess.run(
                ["grep", "-r", "-l", "-i", "-w", word, str(root / "text")],
                capture_output=True,
                check=False,
            )
            grep_times.append((time.perf_counter() - started) * 1000)
        grep_rows.append(
            {
                "bucket": label,
                "queries": len(grep_times),
                "p50_ms": round(statistics.median(grep_times), 1),
            }
        )
    extra: list[tuple[str, Any]] = [
        (
            "two words (medium+rare)",
            lambda: f"{qrng.choice(vocab[500:5000])} {qrng.choice(vocab[5000:])}",
        ),
        (
            "two words (common)",
            lambda: f"{qrng.choice(vocab[50:500])} {qrng.choice(vocab[50:500])}",
        ),
        (
            "phrase (common pair)",
            lambda: f'"{qrng.choice(vocab[:50])} {qrng.choice(vocab[:50])}"',
        ),
        ("prefix (3 letters)", lambda: qrng.choice(vocab[:5000])[:3] + "*"),
    ]
    for label, make in extra:
        times = [timed_search(make())[0] for _ in range(args.queries)]
        everything += times
        rows.append(
            {
                "bucket": label,
                "queries": len(times),
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
                "p99_ms": round(percentile(times, 0.99), 1),
                "max_ms": round(max(times), 1),
                "median_matching_items": None,
            }
        )
    lane_times = [
        timed_search(qrng.choice(vocab[:500]), lane=qrng.choice(threads))[0]
        for _ in range(args.queries)
    ]
    everything += lane_times
    rows.append(
        {
            "bucket": "one lane (--thread), common word",
            "queries": len(lane_times),
            "p50_ms": round(statistics.median(lane_times), 1),
            "p95_ms": round(percentile(lane_times, 0.95), 1),
            "p99_ms": round(percentile(lane_times, 0.99), 1),
            "max_ms": round(max(lane_times), 1),
            "median_matching_items": None,
        }
    )
    overall = {
        "queries": len(everything),
        "p50_ms": round(statistics.median(everything), 1),
        "p95_ms": round(percentile(everything, 0.95), 1),
        "p99_ms": round(percentile(everything, 0.99), 1),
    }

    print(
        f"\nsearch over {built['items']:,} items in {built['lanes']} lanes "
        f"({os.cpu_count()} cores; target p95 <= {TARGET_MS:g} ms)"
    )
    print(
        f"load {built['load_s']} s, FTS build {built['fts_build_s']} s, optimize "
        f"{built['fts_optimize_s']} s, database {built['db_mb']} MB, "
        f"text {built['text_mb']} MB\n"
    )
    print(
        f"{'query kind':<36}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'matching':>10}"
    )
    for row in rows:
        matching = row["median_matching_items"]
        matching = "" if matching is None else matching
        print(
            f"{row['bucket']:<36}{row['queries']:>5}{row['p50_ms']:>9}{row['p95_ms']:>9}"
            f"{row['p99_ms']:>9}{row['max_ms']:>9}{matching:>10}"
        )
    print(
        f"{'all of the above':<36}{overall['queries']:>5}{overall['p50_ms']:>9}"
        f"{overall['p95_ms']:>9}{overall['p99_ms']:>9}"
    )
    print(f"\n{'grep -r -l -i -w (same words)':<36}{'n':>5}{'p50 ms':>9}")
    for row in grep_rows:
        print(f"{row['bucket']:<36}{row['queries']:>5}{row['p50_ms']:>9}")
    report = {
        "target_p95_ms": TARGET_MS,
        "cpus": os.cpu_count(),
        "build": built,
        "search": rows,
        "overall": overall,
        "grep": grep_rows,
    }
    print("\n" + json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
