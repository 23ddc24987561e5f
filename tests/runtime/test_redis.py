from __future__ import annotations

import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dispatchsite.core.errors import ValidationError
from dispatchsite.runtime import redis as private_redis


def test_it_uses_the_venv_redis_when_path_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    found = private_redis.find_redis_server()

    assert found == Path(sys.executable).parent / "redis-server"


def test_it_prefers_a_redis_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "valkey-server").write_text("#!/bin/sh\n")
    (tmp_path / "valkey-server").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert private_redis.find_redis_server() == tmp_path / "valkey-server"


def test_it_names_the_fix_when_no_redis_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))

    with pytest.raises(ValidationError, match="redis-server") as caught:
        private_redis.find_redis_server()

    assert "DISPATCH_REDIS_URL" in caught.value.hint


def test_it_rejects_a_socket_path_longer_than_sun_path(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="shorter path"):
        private_redis.check_socket_path(tmp_path / ("x" * 120) / "redis.sock")


def test_it_serves_only_on_a_private_unix_socket(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    sock = run / "redis.sock"
    argv = private_redis.private_redis_argv(
        binary=private_redis.find_redis_server(), socket_path=sock
    )
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not private_redis.ping_socket(sock):
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server never answered"
            time.sleep(0.05)

        assert stat.S_IMODE(sock.stat().st_mode) == 0o700
        assert private_redis.redis_reachable(f"unix://{sock}")
        import redis

        client = redis.Redis(unix_socket_path=str(sock))
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_it_reports_an_unreachable_redis_as_false(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    assert not private_redis.redis_reachable(f"redis://127.0.0.1:{port}/0")
    assert not private_redis.redis_reachable(f"unix://{tmp_path}/none.sock")
