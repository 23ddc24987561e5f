from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dispatchsite.core.errors import ValidationError
from dispatchsite.runtime import home
from tests.runtime import dispatch_home


def test_it_creates_home_with_a_private_run_dir(tmp_path: Path) -> None:
    with dispatch_home(tmp_path / "a" / "home") as root:
        (root / "run").mkdir(parents=True, mode=0o755)
        (root / "run").chmod(0o755)

        home.ensure_home()

        assert stat.S_IMODE((root / "run").stat().st_mode) == 0o700
        assert (root / "logs").is_dir()
        assert home.redis_socket_path() == root / "run" / "redis.sock"
        assert home.worker_state_file("h1") == root / "run" / "worker-h1.json"
        assert home.log_file("web") == root / "logs" / "web.log"
        assert not [p for p in root.rglob(".write-probe-*")]


def test_it_rejects_a_home_that_cannot_be_created(tmp_path: Path) -> None:
    # Tests run as root, for whom chmod 0500 does not stop writes; a path
    # below a regular file fails for everyone (ENOTDIR).
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    with dispatch_home(blocker / "home") as root:
        with pytest.raises(ValidationError) as caught:
            home.ensure_home()

    assert str(root) in caught.value.message
    assert "set DISPATCH_HOME to a writable directory" in caught.value.message
    assert caught.value.hint == "set DISPATCH_HOME to a writable directory"
    assert blocker.read_text() == "keep me"


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs sysfs")
def test_it_rejects_a_read_only_filesystem(tmp_path: Path) -> None:
    # sysfs refuses mkdir even to root (EPERM): a real read-only location.
    with dispatch_home(Path("/sys/kernel/dispatch-home")):
        with pytest.raises(ValidationError, match="is not writable"):
            home.ensure_home()


def test_it_writes_json_atomically_and_privately(tmp_path: Path) -> None:
    target = tmp_path / "state.json"

    home.write_json_atomic(target, {"pid": 1})
    home.write_json_atomic(target, {"pid": 2})

    assert home.read_json(target) == {"pid": 2}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_it_reads_missing_or_corrupt_json_as_none(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1]")

    assert home.read_json(tmp_path / "missing.json") is None
    assert home.read_json(tmp_path / "bad.json") is None
    assert home.read_json(tmp_path / "list.json") is None
