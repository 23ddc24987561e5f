"""Two beats against one database: every trigger slot fires exactly once.

Two processes tick the same clock at the same moment (what a second beat, or
a beat restarted on another machine, does); the triggers ledger (unique
trigger+slot rows, conditional claims) lets only one of them run each slot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hosts import shared_database
from tests.runtime import cli_env
from tests.support.stack import REPO

pytestmark = pytest.mark.timeout(180)


def test_it_fires_each_slot_once_with_two_beats(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    with shared_database(tmp_path) as url:
        env = cli_env(tmp_path, DATABASE_URL=url, BEAT_RACE_CALLS=str(calls))
        env["PYTHONPATH"] = str(REPO)
        argv = [sys.executable, "-m", "tests.hosts.beat_race"]
        subprocess.run([*argv, "setup"], env=env, cwd=REPO, check=True)
        start = time.time() + 4.0  # both interpreters are up by then
        beats = [
            subprocess.Popen(
                [*argv, "race", str(start), str(beat)],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            for beat in range(2)
        ]
        outputs = [beat.communicate(timeout=120)[0] for beat in beats]
    assert [beat.returncode for beat in beats] == [0, 0]
    claimed = [json.loads(out.strip().splitlines()[-1])["claimed"] for out in outputs]
    everything = claimed[0] + claimed[1]
    # Slots every 2 s over 10 s (plus the lookahead's next one); a slot both
    # beats saw is still sent once (the firing's run is a conditional claim).
    firings = set(everything)
    assert len(firings) >= 5
    sent = [
        json.loads(line)["method"]
        for line in calls.read_text().splitlines()
        if line.strip()
    ]
    assert sent.count("turn/start") == len(firings)
