from __future__ import annotations

import json
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatchsite.core.errors import AppServerError
from dispatchsite.runtime import home, migrate
from tests.runtime import cli, cli_env, dispatch_home


def test_it_migrates_then_backs_up_before_each_later_run(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    db = tmp_path / "home" / "dispatch.sqlite3"

    first = cli("registry", "migrate", env=env)

    assert first.status == 0, first.stderr
    result = first.json
    assert result["status"] == "ok" and result["migrated"] is True
    assert result["db"] == str(db)
    assert result["from_schema_version"] == 0
    assert result["to_schema_version"] == len(result["applied"]) > 0
    assert result["backup"] is None  # nothing to back up yet
    assert result["daemon_running"] is False

    second = cli("registry", "migrate", env=env).json

    assert second["migrated"] is False
    assert second["from_schema_version"] == second["to_schema_version"]
    assert second["to_schema_version"] == result["to_schema_version"]
    backup = Path(second["backup"])
    assert re.fullmatch(r"dispatch\.sqlite3\.bak-\d{8}-\d{6}", backup.name)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as copy:
        (count,) = copy.execute("select count(*) from django_migrations").fetchone()
    assert count == second["to_schema_version"]


@pytest.fixture
def fake_supervisor(tmp_path: Path) -> Iterator[Path]:
    """A process whose cmdline claims to be this home's supervisor."""
    root = tmp_path / "home"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            "supervise",
            "--home",
            str(root),
        ]
    )
    try:
        with dispatch_home(root):
            home.ensure_home()
            home.supervisor_pidfile().write_text(f"{proc.pid}\n")
            yield root
    finally:
        proc.kill()
        proc.wait()


def test_it_refuses_while_the_daemon_runs(fake_supervisor: Path) -> None:
    with pytest.raises(AppServerError) as caught:
        migrate.registry_migrate(backup=True, allow_running=False)

    error = caught.value
    assert error.exit_status == 8
    assert "dispatch down" in error.message
    assert error.data["status"] == "blocked"
    assert error.data["reason"] == "daemon_running"
    assert error.data["migrated"] is False
    assert "--allow-running" in error.data["recovery"]
    assert not list(fake_supervisor.glob("*.bak-*"))


def test_it_says_stop_the_daemon_first_under_its_own_code(
    fake_supervisor: Path, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)

    refused = cli("registry", "migrate", env=env)

    # Exit 8 as in the tool users come from, but not an app-server error.
    assert refused.status == 8, refused.stderr
    error = json.loads(refused.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "daemon_running"
    assert "stop the daemon first (`dispatch down`)" in error["message"]
    assert error["data"]["reason"] == "daemon_running"


def test_it_snapshots_wal_contents_privately(tmp_path: Path) -> None:
    db = tmp_path / "dispatch.sqlite3"
    writer = sqlite3.connect(db)
    writer.execute("pragma journal_mode=wal")
    writer.execute("pragma wal_autocheckpoint=0")
    writer.execute("create table t (v text)")
    writer.executemany("insert into t values (?)", [("a",), ("b",)])
    writer.commit()
    assert (tmp_path / "dispatch.sqlite3-wal").stat().st_size > 0

    backup = migrate.backup_sqlite(db)
    writer.close()

    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as copy:
        assert copy.execute("select v from t order by v").fetchall() == [
            ("a",),
            ("b",),
        ]


def test_it_never_overwrites_an_existing_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)

    class FrozenClock:
        @staticmethod
        def now(tz: object = None) -> datetime:
            return frozen

    monkeypatch.setattr(migrate, "datetime", FrozenClock)
    db = tmp_path / "dispatch.sqlite3"
    sqlite3.connect(db).close()
    existing = tmp_path / "dispatch.sqlite3.bak-20261130-080000"
    existing.write_text("older backup")

    with pytest.raises(FileExistsError):
        migrate.backup_sqlite(db)

    assert existing.read_text() == "older backup"


def test_it_migrates_while_running_when_allowed(
    fake_supervisor: Path, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)

    allowed = cli("registry", "migrate", "--allow-running", "--no-backup", env=env)

    assert allowed.status == 0, allowed.stderr
    assert allowed.json["daemon_running"] is True
    assert allowed.json["migrated"] is True
    assert allowed.json["backup"] is None
