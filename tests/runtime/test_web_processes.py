"""DISPATCH_WEB_PROCESSES: several daphne processes serving one port.

Each binds the port with SO_REUSEPORT and the kernel spreads connections
over them, so the API is not limited to one process's GIL, and a web
process that dies leaves its siblings answering while the supervisor
restarts it.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatchsite.runtime.stack import build_children
from dispatchsite.runtime.web import shared_listener
from tests.runtime import HOST
from tests.support.stack import Stack, free_port, wait_for
from tests.support.supervised import Supervised

pytestmark = pytest.mark.timeout(240)


def health(url: str) -> int:
    """GET /healthz on a new connection (the kernel picks the process)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def served(log: Path) -> int:
    return log.read_text(errors="replace").count('"GET /healthz')


@pytest.fixture
def two_webs(tmp_path: Path) -> Iterator[Supervised]:
    stack = Stack(tmp_path, codex="fake", extra_env={"DISPATCH_WEB_PROCESSES": "2"})
    running = Supervised(stack)
    try:
        yield running
    finally:
        running.down()


def test_it_runs_one_shared_daphne_per_web_process(settings: Any) -> None:
    settings.DISPATCH_WEB_PROCESSES = 3
    children = build_children(port=8321, host=HOST, private_redis=False)
    webs = [child for child in children if child.name.startswith("web")]
    assert [child.name for child in webs] == ["web", "web-2", "web-3"]
    for child in webs:
        assert child.argv[child.argv.index("--shared-port") + 1] == "127.0.0.1:8321"
        assert "-p" not in child.argv
    ready = {child.argv[child.argv.index("--ready-file") + 1] for child in webs}
    assert len(ready) == 3


def test_it_binds_the_port_alone_with_one_web_process(settings: Any) -> None:
    settings.DISPATCH_WEB_PROCESSES = 1
    children = build_children(port=8321, host=HOST, private_redis=False)
    (web,) = [child for child in children if child.name.startswith("web")]
    assert web.argv[web.argv.index("-p") + 1] == "8321"
    assert "--shared-port" not in web.argv and "--ready-file" not in web.argv


def test_it_shares_a_port_only_with_sharers() -> None:
    port = free_port()
    first = shared_listener("127.0.0.1", port)
    second = shared_listener("127.0.0.1", port)
    try:
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    finally:
        first.close()
        second.close()


def test_it_serves_one_port_from_every_web_process_and_survives_one_dying(
    two_webs: Supervised,
) -> None:
    status = two_webs.stack.cli_ok("daemon", "status")["daemon"]
    webs = {name: status["components"][name] for name in ("web", "web-2")}
    assert all(info["status"] == "up" for info in webs.values()), webs
    assert webs["web"]["pid"] != webs["web-2"]["pid"]
    logs = two_webs.stack.home / "logs"
    before = {name: served(logs / f"{name}.log") for name in webs}
    assert all(health(two_webs.url) == 200 for _ in range(40))

    def logged() -> dict[str, int] | None:
        # daphne logs a request just after answering it.
        after = {name: served(logs / f"{name}.log") - before[name] for name in webs}
        return after if sum(after.values()) >= 40 else None

    after = wait_for(logged, timeout=10, what="40 access-log lines")
    # 40 new connections, spread by the kernel: both processes answered.
    assert all(count > 0 for count in after.values()), after

    # The supervisor is paused while `web` is dead: web-2 answers alone.
    statuses: list[int] = []
    two_webs.kill(
        "web", during=lambda: statuses.extend(health(two_webs.url) for _ in range(20))
    )
    assert statuses == [200] * 20
    assert two_webs.component("web-2")["pid"] == webs["web-2"]["pid"]
    assert health(two_webs.url) == 200
