"""The MCP server: tools/list from the projection, tools/call over REST."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx2
import mcp_types as types
from mcp.server.lowlevel import Server

from dispatchsite.core.registry import internal_fields
from dispatchsite.surfaces.mcp.client import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    Resolver,
    RestOps,
    resolved,
)
from dispatchsite.surfaces.mcp.projection import build_tools, tool_ops
from dispatchsite.surfaces.mcp.results import route_error

SERVER_NAME = "dispatch"


def meta_thread_id(meta: Mapping[str, Any] | None) -> str | None:
    """The calling Codex thread named in a tools/call `_meta`, if any.

    codex 0.169 does not put CODEX_THREAD_ID in an MCP server's environment;
    it names the thread in each call's `_meta`, as `threadId` and as
    `x-codex-turn-metadata.thread_id`.
    """
    if not meta:
        return None
    turn = meta.get("x-codex-turn-metadata")
    for value in (
        meta.get("threadId"),
        turn.get("thread_id") if isinstance(turn, Mapping) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None


def build_server(
    base_url: Resolver,
    token: Resolver,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
    caller_thread_id: Resolver = None,
) -> Server[Any]:
    """An MCP server exposing the registry's tool groups over REST.

    `base_url` and `token` are strings or zero-argument callables, called
    per tool call, so a daemon started after the MCP server is still found.
    The calling thread (for `send` with `intro`) is `caller_thread_id` if
    given, else the thread the host names in the call's `_meta`, else
    $CODEX_THREAD_ID; it travels to REST in the caller header.
    """
    tools = build_tools()
    routes = tool_ops()
    rest = RestOps(
        base_url=base_url,
        token=token,
        transport=transport,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    by_name = {tool.name: tool for tool in tools}

    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        actions = routes.get(params.name)
        if actions is None:
            return route_error(
                f"unknown tool {params.name!r}", "tools/list names the dispatch tools"
            )
        arguments = dict(params.arguments or {})
        action = arguments.pop("op", None)
        op = actions.get(action) if isinstance(action, str) else None
        if op is None:
            return route_error(
                f"{params.name}: unknown op {action!r}",
                f"pass op as one of: {', '.join(actions)}",
            )
        # Internal fields are the surfaces' to fill; REST refuses them in a
        # body and takes the calling thread from a header instead.
        for name in internal_fields(op.input):
            arguments.pop(name, None)
        caller = (
            resolved(caller_thread_id)
            or meta_thread_id(params.meta)
            or os.environ.get("CODEX_THREAD_ID")
        )
        return await rest.run(op.id, arguments, caller_thread_id=caller)

    def input_schema(name: str) -> dict[str, Any] | None:
        tool = by_name.get(name)
        return tool.input_schema if tool is not None else None

    return Server(
        SERVER_NAME,
        version=dispatch_version(),
        instructions=(
            "dispatch controls Codex threads (lanes). Every tool takes `op` plus "
            "that op's arguments. If a tool says the daemon is unreachable, the "
            "user must run `dispatch up`."
        ),
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def dispatch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dispatch")
    except PackageNotFoundError:
        return "0"
