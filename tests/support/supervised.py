"""A stack started by `dispatch up` (the supervisor), for fault tests."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

from lanes.journal.bus import JOURNAL_CHANNEL
from tests.support.stack import Stack, free_port, pid_alive, wait_for


class Supervised:
    """A stack started by `dispatch up`, driven through its CLI."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = free_port()
        up = stack.cli("up", "--port", str(self.port), timeout=120)
        assert up.status == 0, up.stderr
        self.url = str(up.json["url"])

    def state(self) -> dict[str, Any]:
        path = self.stack.run_dir / "supervisor.json"
        data = json.loads(path.read_text())
        assert isinstance(data, dict)
        return data

    def component(self, name: str) -> dict[str, Any]:
        info = self.state()["components"][name]
        assert isinstance(info, dict)
        return info

    def kill(self, name: str, *, during: Callable[[], None] = lambda: None) -> None:
        """SIGKILL one component, run `during`, wait until it is up again.

        The supervisor is paused meanwhile, so `during` really runs in the
        outage (its restart would otherwise beat a CLI call's start-up).
        """
        before = self.component(name)
        supervisor = int(self.state()["pid"])
        os.kill(supervisor, signal.SIGSTOP)
        try:
            os.kill(before["pid"], signal.SIGKILL)
            wait_for(lambda: not pid_alive(before["pid"]), what=f"{name} to die")
            during()
        finally:
            os.kill(supervisor, signal.SIGCONT)

        def back() -> bool:
            info = self.component(name)
            return info["pid"] != before["pid"] and info["status"] == "up"

        wait_for(back, timeout=60, what=f"the supervisor to restart {name}")
        assert not pid_alive(before["pid"])

    def journal_subscribers(self) -> int:
        """Processes subscribed to the journal bus (web hubs)."""
        import redis

        client = redis.Redis(unix_socket_path=str(self.stack.run_dir / "redis.sock"))
        try:
            return int(
                dict(client.pubsub_numsub(JOURNAL_CHANNEL))[JOURNAL_CHANNEL.encode()]
            )
        finally:
            client.close()

    def down(self) -> None:
        self.stack.cli("down", timeout=60)
