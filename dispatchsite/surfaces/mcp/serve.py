"""The transports (stdio, streamable HTTP) and the `dispatch mcp` entry point."""

from __future__ import annotations

import hmac
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.lowlevel import Server

from dispatchsite.core.errors import ValidationError
from dispatchsite.surfaces.daemon import CachedToken, local_base_url
from dispatchsite.surfaces.mcp.client import TOKEN_FIX
from dispatchsite.surfaces.mcp.results import EXIT_UNAUTHORIZED
from dispatchsite.surfaces.mcp.server import build_server


async def serve_stdio(server: Server[Any]) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(
            read_stream, write_stream, server.create_initialization_options()
        )


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def require_bearer(app: ASGIApp, token: Callable[[], str | None]) -> ASGIApp:
    """Wrap an ASGI app so every HTTP request must carry `Bearer <token()>`.

    `token` is read per request: when the adapter renews a refused local
    token, clients that re-read run/mcp-token keep working.
    """

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
            current = token()
            expected = f"Bearer {current}".encode()
            if not current or not hmac.compare_digest(given, expected):
                body = json.dumps(
                    {
                        "error": {
                            "code": "unauthorized",
                            "message": "missing or wrong bearer token",
                            "exit_status": EXIT_UNAUTHORIZED,
                            "hint": "send the token `dispatch mcp` uses "
                            "(DISPATCH_TOKEN or run/mcp-token)",
                        }
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def http_app(server: Server[Any], token: Callable[[], str | None]) -> ASGIApp:
    app = server.streamable_http_app(host="127.0.0.1")
    return require_bearer(app, token)  # type: ignore[arg-type]


def serve_http(
    server: Server[Any], *, token: Callable[[], str | None], port: int
) -> None:
    import uvicorn

    # Its own uvicorn, not daphne: the MCP app needs ASGI lifespan to start
    # its session manager, which daphne does not implement.
    config = uvicorn.Config(
        http_app(server, token), host="127.0.0.1", port=port, log_level="warning"
    )
    uvicorn.Server(config).run()


# -- the `dispatch mcp` command -----------------------------------------------


def run_mcp(*, http: bool, port: int) -> None:
    token = CachedToken()
    server = build_server(local_base_url, token)
    if not http:
        anyio.run(serve_stdio, server)
        return None
    if not token():
        raise ValidationError(
            "`dispatch mcp --http` needs an API token", hint=TOKEN_FIX
        )
    print(
        f"dispatch mcp: streamable HTTP on http://127.0.0.1:{port}/mcp",
        file=sys.stderr,
        flush=True,
    )
    serve_http(server, token=token, port=port)
    return None
