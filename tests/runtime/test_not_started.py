"""A home that was never started: say so and how to start, not "no such table"."""

from __future__ import annotations

from pathlib import Path

from tests.runtime import cli, cli_env


def test_it_reports_a_never_started_home_as_not_running(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    status = cli("daemon", "status", env=env)
    assert status.status == 0, status.stderr
    assert status.json["lanes"] == 0
    assert status.json["daemon"]["running"] is False
    assert "dispatch up" in status.json["daemon"]["hint"]

    listed = cli("list", env=env)
    assert listed.status == 1
    assert listed.error["code"] == "not_running"
    assert "dispatch up" in listed.error["hint"]
    assert "Traceback" not in listed.stderr
