"""How a talk with one `codex app-server` child can fail, as dispatch errors."""

from __future__ import annotations

from typing import Any

from dispatchsite.core.errors import AppServerError

JSONRPC_METHOD_NOT_FOUND = -32601
JSONRPC_INTERNAL_ERROR = -32603


class AppServerStartError(AppServerError):
    """The child could not be spawned, died, or never answered `initialize`."""


class AppServerTimeout(AppServerError):
    """A request got no response in time (the child may still be alive)."""


class AppServerClosed(AppServerError):
    """The child exited or the client was closed while a request was pending."""


class RpcError(AppServerError):
    """The app-server answered a request with a JSON-RPC error.

    `DispatchError.code` is the dispatch error kind, so the JSON-RPC code lives
    in `rpc_code` (0.169 uses -32600 for nearly everything).
    """

    def __init__(self, rpc_code: int, message: str, data: Any = None) -> None:
        super().__init__(message, data={"rpc_code": rpc_code, "rpc_data": data})
        self.rpc_code = rpc_code
        self.rpc_data = data
