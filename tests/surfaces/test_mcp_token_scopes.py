"""`dispatch mcp --http` under a scoped token: MCP calls REST with that token,
so REST's scope check (lanes.tokens.TokenScope) holds the tools to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.mcp_http import mcp_http_server
from tests.support.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = Stack(root=tmp_path_factory.mktemp("mcpscope")).start(web=True)
    try:
        yield started
    finally:
        started.stop()


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error is True, result.content
    body: dict[str, Any] = json.loads(result.content[0].text)["error"]
    return body


@pytest.mark.anyio
async def test_it_holds_mcp_tools_to_the_tokens_scopes(stack: Stack) -> None:
    work = stack.root / "work"
    work.mkdir(exist_ok=True)
    alpha = stack.cli_ok("new", "--name", "alpha", "--cwd", str(work), "--no-send")
    stack.cli_ok("new", "--name", "beta", "--cwd", str(work), "--no-send")
    token = stack.cli_ok(
        "token", "create", "mcp-scoped", "--read-only", "--lane", "@alpha"
    )["token"]
    env = {**stack.env, "DISPATCH_URL": str(stack.web_url), "DISPATCH_TOKEN": token}
    auth = {"Authorization": f"Bearer {token}"}
    with mcp_http_server(env, stack.root) as url:
        async with httpx2.AsyncClient(headers=auth, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                roster = await client.call_tool(
                    "dispatch_thread_read", {"op": "roster"}
                )
                send = await client.call_tool(
                    "dispatch_thread_write",
                    {"op": "send", "lane": alpha["ref"], "text": "hi"},
                )
                beta = await client.call_tool(
                    "dispatch_thread_read", {"op": "show", "lane": "@beta"}
                )

    assert roster.is_error is False, roster.content
    assert roster.structured_content is not None
    assert [row["ref"] for row in roster.structured_content["lanes"]] == [alpha["ref"]]
    refused = error_of(send)
    assert refused["code"] == "authority" and "read-only" in refused["message"]
    assert error_of(beta)["code"] == "authority"
    actors = {row["actor"] for row in stack.cli_ok("daemon", "log")["actions"]}
    assert "token:mcp-scoped" in actors
