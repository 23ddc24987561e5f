"""Owner-only DISPATCH_HOME and a per-home SECRET_KEY (issue 10, items 1 and 2).

Two real stacks for the module: one `up` on a home left loose by an older
dispatch (0755 folders, 0644 database, log and config), one on a home that
does not exist yet. Both are stopped at the end.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtime import REPO, cli, cli_env

pytestmark = pytest.mark.timeout(240)

LOOSE = 0o077


@dataclass
class Up:
    root: Path
    home: Path
    env: dict[str, str]
    up: dict[str, Any]
    output: str


def start(root: Path) -> Up:
    env = cli_env(root)
    result = cli("up", "--port", "0", env=env)
    assert result.status == 0, result.stderr
    return Up(root, root / "home", env, result.json, result.stdout + result.stderr)


def loosen(home: Path, outside: Path) -> None:
    """What an older dispatch (umask 022) left behind."""
    outside.write_text("not dispatch's\n")
    (home / "logs").mkdir(parents=True)
    (home / "run").mkdir()
    (home / "dispatch.sqlite3").write_bytes(b"")  # SQLite takes an empty file
    (home / "logs" / "web.log").write_text("old line\n")
    (home / "config.toml").write_text("")
    (home / "link-out").symlink_to(outside)
    for path in (home, home / "logs", home / "run"):
        path.chmod(0o755)
    for path in (home / "dispatch.sqlite3", home / "logs/web.log", outside):
        path.chmod(0o644)
    (home / "config.toml").chmod(0o644)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Up]]:
    loose_root = tmp_path_factory.mktemp("loose")
    loosen(loose_root / "home", loose_root / "outside.txt")
    started: list[Up] = []
    try:
        started.append(start(loose_root))
        started.append(start(tmp_path_factory.mktemp("fresh")))
        yield started[0], started[1]
    finally:
        for stack in started:
            cli("down", env=stack.env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def everything_in(home: Path) -> list[Path]:
    found = [home]
    for directory, dirs, files in os.walk(home):
        found += [Path(directory) / name for name in dirs + files]
    return [path for path in found if not path.is_symlink()]


def test_doctor_warns_about_a_home_other_users_can_read(tmp_path: Path) -> None:
    loosen(tmp_path / "home", tmp_path / "outside.txt")

    result = cli("doctor", "--no-app-server", env=cli_env(tmp_path))

    assert result.status == 0, result.stderr
    check = {c["name"]: c for c in result.json["checks"]}["dispatch_home"]
    assert check["status"] == "warn"
    assert str(tmp_path / "home" / "dispatch.sqlite3") in check["detail"]
    assert "dispatch up" in check["recovery"] and "chmod" in check["recovery"]


def test_up_makes_a_loose_home_owner_only(stacks: tuple[Up, Up]) -> None:
    loose, _ = stacks
    home = loose.home

    for path in everything_in(home):
        assert mode(path) & LOOSE == 0, f"{path} is {oct(mode(path))}"
    assert mode(home) == 0o700
    assert mode(home / "dispatch.sqlite3") == 0o600
    assert mode(home / "config.toml") == 0o600
    assert mode(home / "logs" / "web.log") == 0o600
    # A symlink out of the home is not followed.
    assert mode(loose.root / "outside.txt") == 0o644
    doctor = cli("doctor", "--no-app-server", env=loose.env)
    check = {c["name"]: c for c in doctor.json["checks"]}["dispatch_home"]
    assert check["status"] == "ok", check


def test_up_creates_a_fresh_home_owner_only(stacks: tuple[Up, Up]) -> None:
    _, fresh = stacks
    home = fresh.home
    logs = sorted((home / "logs").glob("*.log"))

    assert {p.name for p in logs} >= {"supervisor.log", "web.log", "worker.log"}
    db_files = [home / "dispatch.sqlite3", home / "dispatch.sqlite3-wal"]
    db_files += [p for p in [home / "dispatch.sqlite3-shm"] if p.exists()]
    for path in [home, home / "run", home / "logs"]:
        assert mode(path) == 0o700, path
    for path in [*db_files, *logs]:
        assert mode(path) == 0o600, path
    for path in everything_in(home):
        assert mode(path) & LOOSE == 0, f"{path} is {oct(mode(path))}"


def test_every_process_up_starts_has_an_owner_only_umask(
    stacks: tuple[Up, Up],
) -> None:
    _, fresh = stacks
    pids = [fresh.up["pid"], *(c["pid"] for c in fresh.up["components"].values())]
    pids.append(fresh.up["app_server"]["pid"])

    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        umask = next(line for line in status.splitlines() if line.startswith("Umask"))
        assert umask.split()[1] == "0077", pid


def key_of(stack: Up) -> str:
    path = stack.home / "secret_key"
    assert mode(path) == 0o600
    return path.read_text().strip()


def test_each_home_gets_its_own_secret_key(stacks: tuple[Up, Up]) -> None:
    keys = [key_of(stack) for stack in stacks]

    assert keys[0] != keys[1]
    assert all(len(key) >= 50 for key in keys)
    assert "dispatch-local-only-not-secret" not in keys
    for stack, key in zip(stacks, keys, strict=True):
        assert key not in stack.output
        for log in (stack.home / "logs").glob("*.log"):
            assert key not in log.read_text(errors="replace"), log


def settings_key_digest(env: dict[str, str]) -> str:
    """sha256 of SECRET_KEY as a dispatch process sees it (never the key)."""
    code = (
        "import hashlib, django; django.setup(); "
        "from django.conf import settings; "
        "print(hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_settings_sign_with_the_home_key_unless_overridden(
    stacks: tuple[Up, Up], tmp_path: Path
) -> None:
    loose, _ = stacks
    assert settings_key_digest(loose.env) == digest(key_of(loose))

    override = {**loose.env, "DISPATCH_SECRET_KEY": "from-the-environment"}
    assert settings_key_digest(override) == digest("from-the-environment")

    # Before the first `up`: nothing is created, and no shared constant.
    unstarted = cli_env(tmp_path)
    first, second = settings_key_digest(unstarted), settings_key_digest(unstarted)
    assert first != second
    assert digest("dispatch-local-only-not-secret") not in (first, second)
    assert not (tmp_path / "home").exists()
