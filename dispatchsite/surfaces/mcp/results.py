"""Tool results shaped like the CLI's and REST's error body.

An error is an `isError` result, never an exception: the model reads the
same `{error: {code, message, exit_status, hint}}` a CLI user would.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

from dispatchsite.surfaces.daemon import UP_FIX

# Same exit status as the CLI: unreachable daemon and app-server trouble
# both leave the caller unable to act until the stack is fixed.
EXIT_UNREACHABLE = 8
EXIT_ROUTE = 2
EXIT_UNAUTHORIZED = 7  # as dispatchsite.surfaces.auth.UnauthorizedError
EXIT_INTERNAL = 1


def ok_result(output: dict[str, Any]) -> types.CallToolResult:
    text = json.dumps(output, ensure_ascii=False, default=str)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=output,
    )


def error_result(
    code: str,
    message: str,
    *,
    exit_status: int,
    hint: str = "",
    http_status: int | None = None,
    data: dict[str, Any] | None = None,
) -> types.CallToolResult:
    """An isError result shaped like the CLI's and REST's error body."""
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "exit_status": exit_status,
    }
    if hint:
        body["hint"] = hint
    if data:
        body["data"] = data
    # dispatchCode mirrors code for clients written against the tool our
    # users come from, which kept both.
    meta: dict[str, Any] = {"code": code, "dispatchCode": code, "exitCode": exit_status}
    if http_status is not None:
        meta["httpStatus"] = http_status
    if hint:
        meta["hint"] = hint
    text = json.dumps({"error": body}, ensure_ascii=False, default=str)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        is_error=True,
        _meta=meta,
    )


def unreachable(message: str, *, hint: str = UP_FIX) -> types.CallToolResult:
    return error_result(
        "daemon_unreachable", message, exit_status=EXIT_UNREACHABLE, hint=hint
    )


def route_error(message: str, hint: str) -> types.CallToolResult:
    return error_result("mcp_route_error", message, exit_status=EXIT_ROUTE, hint=hint)
