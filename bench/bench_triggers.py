"""Benchmarks of the trigger scheduler (the one claiming beat entry).

(a) live: 1,000 enabled interval triggers (1-5 s) for --seconds (default 60)
    on a real celery worker with embedded beat (as `dispatch up` runs it:
    --pool=solo, DatabaseScheduler) and a private Redis, SQLite in WAL mode.
    Delivery is stubbed in the celery child (no app-server: 450 turns a
    second is not what is measured); everything else is the production path:
    the tick claims slots, `triggers.fire` runs at the slot (ETA), each firing
    is claimed, guarded, rendered, recorded and audited. Reports lateness
    (started_at - slot_at) p50/p99/max, double deliveries (the stub logs each
    rendered text, which names trigger and slot), missed slots, and the CPU
    of the celery process tree (worker + beat) and of Redis.
(b) overhead, in-process with a fake clock: 10,000 registered triggers
    (1,000 of them enabled 1-5 s intervals, 9,000 paused or hourly), the
    claim step of one tick timed over --ticks ticks; next to 1,000 registered
    alone, and the time django-celery-beat's DatabaseScheduler takes to load
    10,000 PeriodicTask rows (what the mirror design would pay on every
    schedule change).

    .venv/bin/python bench/bench_triggers.py [--seconds 60] [--skip-live]

Targets: p99 lateness <= 1 s, zero double firings. No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIVE_TRIGGERS = 1000
REGISTERED = 10_000
WARMUP_S = 5


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def setup_django(home: Path) -> None:
    (home / "run").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DISPATCH_HOME=str(home),
        DISPATCH_HOST="benchhost",
        DJANGO_SETTINGS_MODULE="dispatchsite.settings",
    )
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_lane() -> Any:
    from lanes.models import Lane
    from lanes.services import lane_register

    known = Lane.objects.filter(thread_id="bench-thread").first()
    return known or lane_register(
        thread_id="bench-thread", title="bench", source="own", cwd="/", host="benchhost"
    )


def seed_triggers(count: int, *, start: datetime, rng: random.Random) -> None:
    """`count` enabled interval triggers, periods 1-5 s, phases spread."""
    from triggers.models import Trigger

    lane = bench_lane()
    rows = []
    for i in range(count):
        seconds = i % 5 + 1
        rows.append(
            Trigger(
                id=f"b{i:07d}",
                name=f"bench-{i}",
                lane=lane,
                kind="interval",
                seconds=seconds,
                action="context",
                text="{{ trigger_id }} {{ slot }}",
                next_due_at=start + timedelta(seconds=rng.randrange(seconds)),
            )
        )
    Trigger.objects.bulk_create(rows, batch_size=500)


# -- (a) live ------------------------------------------------------------------

CHILD = "--celery-child"


def celery_child(deliveries: Path) -> None:
    """The celery worker + beat, with deliveries written to a file instead."""
    from django.conf import settings  # noqa: F401  (settings via setup_django)

    import triggers.services.firing as firing

    out = deliveries.open("a", buffering=1)

    def stub(*, lane: Any, text: str, mode: str, origin: Any, **kw: Any) -> dict:
        out.write(text + "\n")
        return {"op": "brief", "detail": "benchmark stub", "turn_id": None}

    firing.lane_send = stub  # type: ignore[assignment]
    from dispatchsite.celery import app

    app.worker_main(
        [
            "worker",
            "-B",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=WARNING",
            "--hostname",
            "bench@benchhost",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "-s",
            str(Path(os.environ["DISPATCH_HOME"]) / "run" / "celerybeat-schedule"),
            "--without-mingle",
            "--without-gossip",
        ]
    )


def tree_cpu(root: int) -> float:
    """user + sys seconds of `root` and every live descendant."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        stats[int(entry.name)] = fields
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += (int(stats[pid][11]) + int(stats[pid][12])) / ticks
        todo.extend(parents.get(pid, []))
    return total


def live(seconds: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-trg-"))
    home = root / "home"
    setup_django(home)
    migrate()
    from dispatchsite.runtime.beat import beat_entries_ensure
    from dispatchsite.runtime.redis import find_redis_server, private_redis_argv

    beat_entries_ensure()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    seed_triggers(LIVE_TRIGGERS, start=start, rng=random.Random(7))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sock = home / "run" / "redis.sock"
    redis = subprocess.Popen(
        private_redis_argv(binary=find_redis_server(), socket_path=sock),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not sock.exists():
        time.sleep(0.05)
    deliveries = root / "deliveries.txt"
    log = (root / "celery.log").open("wb")
    celery = subprocess.Popen(
        [sys.executable, __file__, CHILD, str(home), str(deliveries)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    window_start = start + timedelta(seconds=WARMUP_S)
    window_end = window_start + timedelta(seconds=seconds)
    try:
        time.sleep(max(0.0, (window_start - datetime.now(UTC)).total_seconds()))
        cpu0, redis0, wall0 = tree_cpu(celery.pid), tree_cpu(redis.pid), time.time()
        time.sleep(max(0.0, (window_end - datetime.now(UTC)).total_seconds()))
        cpu1, redis1, wall1 = tree_cpu(celery.pid), tree_cpu(redis.pid), time.time()
        time.sleep(3)  # let the window's last slots finish
    finally:
        os.killpg(celery.pid, signal.SIGTERM)
        celery.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)
    return live_report(
        window_start=window_start,
        window_end=window_end,
        deliveries=deliveries,
        celery_cpu=(cpu1 - cpu0) / (wall1 - wall0),
        redis_cpu=(redis1 - redis0) / (wall1 - wall0),
        root=root,
    )


def live_report(
    *,
    window_start: datetime,
    window_end: datetime,
    deliveries: Path,
    celery_cpu: float,
    redis_cpu: float,
    root: Path,
) -> dict[str, Any]:
    from triggers.models import Trigger, TriggerFiring

    firings = list(
        TriggerFiring.objects.filter(
            slot_at__gte=window_start, slot_at__lt=window_end
        ).values("trigger_id", "slot_at", "started_at", "outcome", "reason")
    )
    late = [
        (f["started_at"] - f["slot_at"]).total_seconds()
        for f in firings
        if f["started_at"] is not None and f["reason"] == "time"
    ]
    # Slots a trigger should have had in the window but has no firing for.
    period = dict(Trigger.objects.values_list("id", "seconds"))
    slots: dict[str, list[datetime]] = {}
    for f in firings:
        slots.setdefault(f["trigger_id"], []).append(f["slot_at"])
    gaps = 0
    for trigger_id, seen in slots.items():
        span = (max(seen) - min(seen)).total_seconds()
        gaps += int(span // (period[trigger_id] or 1)) + 1 - len(set(seen))
    expected = sum(
        int((window_end - window_start).total_seconds() / (s or 1))
        for s in period.values()
    )
    texts = deliveries.read_text().splitlines() if deliveries.exists() else []
    doubles = sum(n - 1 for n in Counter(texts).values() if n > 1)
    return {
        "triggers": LIVE_TRIGGERS,
        "window_s": (window_end - window_start).total_seconds(),
        "slots_expected_about": expected,
        "missed_slots": gaps,
        "firings": len(firings),
        "outcomes": dict(Counter(f["outcome"] for f in firings)),
        "reasons": dict(Counter(f["reason"] for f in firings)),
        "firings_per_s": round(len(firings) / (window_end - window_start).seconds, 1),
        "lateness_s": {
            "p50": round(pct(late, 0.5), 3),
            "p99": round(pct(late, 0.99), 3),
            "max": round(max(late, default=0.0), 3),
            "n": len(late),
        },
        "deliveries_total": len(texts),
        "double_firings": doubles,
        "celery_cpu_cores": round(celery_cpu, 3),
        "redis_cpu_cores": round(redis_cpu, 3),
        "loadavg": os.getloadavg(),
        "logs": str(root),
    }


# -- (b) overhead ---------------------------------------------------------------


def overhead(ticks: int) -> dict[str, Any]:
    from triggers.models import Trigger, TriggerFiring
    from triggers.services import triggers_claim

    start = datetime(2030, 1, 1, tzinfo=UTC)
    rng = random.Random(11)
    seed_triggers(LIVE_TRIGGERS, start=start, rng=rng)

    def run_ticks() -> list[float]:
        TriggerFiring.objects.all().delete()
        Trigger.objects.filter(kind="interval", seconds__lte=5).update(
            next_due_at=start
        )
        times = []
        for i in range(ticks):
            began = time.perf_counter()
            triggers_claim(now=start + timedelta(seconds=i))
            times.append((time.perf_counter() - began) * 1000)
        return times

    alone = run_ticks()
    lane = bench_lane()
    extra = []
    for i in range(REGISTERED - LIVE_TRIGGERS):
        paused = i % 2 == 0
        extra.append(
            Trigger(
                id=f"i{i:07d}",
                name=f"idle-{i}",
                lane=lane,
                kind="interval",
                seconds=3600,
                action="send",
                text="x",
                enabled=not paused,
                next_due_at=start + timedelta(seconds=3600 + i % 3600),
            )
        )
    Trigger.objects.bulk_create(extra, batch_size=500)
    registered = run_ticks()
    # Nothing due: what 10,000 registered triggers cost a tick by themselves.
    Trigger.objects.update(next_due_at=start + timedelta(days=1))
    idle = []
    for i in range(ticks):
        began = time.perf_counter()
        triggers_claim(now=start + timedelta(seconds=i))
        idle.append((time.perf_counter() - began) * 1000)
    return {
        "ticks": ticks,
        "claimed_per_tick": round(TriggerFiring.objects.count() / ticks, 1),
        "claim_ms_1000_registered": summarise(alone),
        "claim_ms_10000_registered": summarise(registered),
        "claim_ms_10000_registered_none_due": summarise(idle),
        "periodic_task_mirror_load_ms_10000": mirror_load_ms(),
    }


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 2),
        "p99": round(pct(values, 0.99), 2),
        "max": round(max(values), 2),
    }


def mirror_load_ms() -> float | None:
    """What beat pays to (re)load 10,000 PeriodicTask mirrors."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from dispatchsite.celery import app

    every, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
    PeriodicTask.objects.bulk_create(
        [
            PeriodicTask(name=f"mirror-{i}", task="triggers.fire", interval=every)
            for i in range(REGISTERED)
        ],
        batch_size=500,
    )
    scheduler = DatabaseScheduler(app=app, lazy=True)
    began = time.perf_counter()
    loaded = scheduler.all_as_schedule()
    elapsed = (time.perf_counter() - began) * 1000
    return round(elapsed, 1) if len(loaded) >= REGISTERED else None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        setup_django(Path(sys.argv[2]))
        celery_child(Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if args.skip_live:
        home = Path(tempfile.mkdtemp(prefix="bench-trg-b-")) / "home"
        setup_django(home)
        migrate()
        report["overhead"] = overhead(args.ticks)
    else:
        report["live"] = live(args.seconds)
        # The fake-clock part wants a database of its own: a fresh process.
        done = subprocess.run(
            [sys.executable, __file__, "--skip-live", "--ticks", str(args.ticks)],
            capture_output=True,
            text=True,
            check=True,
        )
        report.update(json.loads(done.stdout))
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)


if __name__ == "__main__":
    main()
