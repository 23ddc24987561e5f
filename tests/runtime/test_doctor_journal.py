"""`doctor`'s journal check, from what the worker writes to its state file."""

from __future__ import annotations

from typing import Any

import pytest

from dispatchsite.runtime import doctor

FAILING = {
    "error": "database or disk is full",
    "since": "2026-12-05T14:00:00+00:00",
    "ended_at": None,
    "held": 120,
    "lost": 0,
    "lanes": ["t-1"],
}


def journal_is(monkeypatch: pytest.MonkeyPatch, journal: dict[str, Any] | None) -> None:
    monkeypatch.setattr(
        "dispatchsite.runtime.status.stack_status", lambda: {"journal": journal}
    )


def test_it_fails_while_the_worker_cannot_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal_is(
        monkeypatch,
        {"ok": False, "failing": FAILING, "hold_limit": 50000, "last_outage": None},
    )
    check = doctor._check_journal()
    assert check["status"] == "fail"
    assert "database or disk is full" in check["summary"]
    assert "120 events held in memory (up to 50000), 0 lost" in check["summary"]
    assert "writable" in check["recovery"]


def test_it_warns_after_an_outage_that_lost_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last = {**FAILING, "ended_at": "2026-12-05T14:05:00+00:00", "lost": 7}
    journal_is(
        monkeypatch,
        {"ok": True, "failing": None, "hold_limit": 50000, "last_outage": last},
    )
    check = doctor._check_journal()
    assert check["status"] == "warn"
    assert check["summary"].startswith("7 events were lost")
    assert "dispatch/journal/gap" in check["detail"]


def test_it_is_ok_when_writing_or_without_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal_is(monkeypatch, None)
    assert doctor._check_journal()["status"] == "ok"
    healthy = {"ok": True, "failing": None, "hold_limit": 50000, "last_outage": None}
    journal_is(monkeypatch, healthy)
    assert doctor._check_journal()["summary"] == "the worker is writing the journal"
