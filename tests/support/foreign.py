"""A Codex thread started by another client on a stack's CODEX_HOME.

A second app-server process (the fake, or the real codex against the mock
Responses server) shares the stack's CODEX_HOME, as a Codex CLI or IDE would;
the thread it creates is unknown to dispatch until attached or synced.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lanes.appserver.client import AppServerClient
from tests.support.stack import Stack

TURN_TIMEOUT = 30.0


async def _run_thread(
    stack: Stack, cwd: Path, texts: list[str], name: str | None
) -> str:
    env = {k: v for k, v in stack.env.items() if not k.startswith("FAKE_APPSERVER_")}
    done = asyncio.Event()

    def on_notification(message: dict[str, Any]) -> None:
        if message.get("method") == "turn/completed":
            done.set()

    client = AppServerClient(
        [stack.env["DISPATCH_CODEX_BIN"], "app-server"],
        env=env,
        on_notification=on_notification,
        client_name="other-client",
    )
    await client.start()
    try:
        started = await client.request("thread/start", {"cwd": str(cwd)})
        thread_id = str(started["thread"]["id"])
        for text in texts:
            done.clear()
            await client.request(
                "turn/start",
                {"threadId": thread_id, "input": [{"type": "text", "text": text}]},
            )
            await asyncio.wait_for(done.wait(), TURN_TIMEOUT)
        if name is not None:
            await client.request(
                "thread/name/set", {"threadId": thread_id, "name": name}
            )
        return thread_id
    finally:
        await client.close()


def foreign_thread(
    stack: Stack,
    *,
    texts: list[str],
    cwd: Path | None = None,
    name: str | None = None,
) -> str:
    """Run one turn per text in a thread no dispatch lane manages; its id."""
    return asyncio.run(_run_thread(stack, cwd or stack.codex_home, texts, name))
