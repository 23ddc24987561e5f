"""The REST client of the daemon: one op, one `POST /api/v1/ops/{op_id}`.

It never raises: an unreachable daemon, a timeout or an error body all come
back as an error result the model can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx2
import mcp_types as types

from dispatchsite.surfaces.mcp.results import (
    EXIT_INTERNAL,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    error_result,
    ok_result,
    unreachable,
)

OPS_PATH = "/api/v1/ops/"
# Must match dispatchsite.surfaces.rest.CALLER_HEADER; not imported from
# there because that module pulls in ninja, which `dispatch mcp` never needs.
CALLER_HEADER = "X-Dispatch-Caller-Thread-Id"

# Connection refused is instant; this only bounds a black-holed host, so a
# stopped daemon is reported within seconds instead of hanging the model.
CONNECT_TIMEOUT_S = 2.0
# Some ops legitimately wait on the app-server (new, send, watch).
READ_TIMEOUT_S = 120.0

TOKEN_FIX = (
    "set DISPATCH_TOKEN to a token from `dispatch token create <name>`, or run "
    "`dispatch up` so `dispatch mcp` can create its own local token"
)
SKEW_FIX = (
    "the daemon may run another dispatch version; restart it with "
    "`dispatch down` then `dispatch up`"
)

Resolver = str | None | Callable[[], str | None]


def resolved(value: Resolver) -> str | None:
    return value() if callable(value) else value


@dataclass
class RestOps:
    """Runs one op through `POST /api/v1/ops/{op_id}`; never raises."""

    base_url: Resolver
    token: Resolver
    transport: httpx2.AsyncBaseTransport | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S
    read_timeout: float = READ_TIMEOUT_S

    async def run(
        self, op_id: str, params: dict[str, Any], *, caller_thread_id: str | None = None
    ) -> types.CallToolResult:
        # Resolvers may read files or the DB; keep them off the event loop.
        base_url = await anyio.to_thread.run_sync(resolved, self.base_url)
        if not base_url:
            return unreachable("dispatch is not running: no daemon URL is known")
        token = await anyio.to_thread.run_sync(resolved, self.token)
        if not token:
            return error_result(
                "unauthorized",
                "no dispatch API token is available to the MCP server",
                exit_status=EXIT_UNAUTHORIZED,
                hint=TOKEN_FIX,
            )
        result, status = await self._post(
            base_url, token, op_id, params, caller_thread_id
        )
        renew = getattr(self.token, "refused", None)
        if status == 401 and renew is not None:
            # A revoked or reset local token heals itself once per refusal.
            fresh = await anyio.to_thread.run_sync(renew, token)
            if fresh:
                result, status = await self._post(
                    base_url, fresh, op_id, params, caller_thread_id
                )
        return result

    async def _post(
        self,
        base_url: str,
        token: str,
        op_id: str,
        params: dict[str, Any],
        caller_thread_id: str | None,
    ) -> tuple[types.CallToolResult, int | None]:
        headers = {"Authorization": f"Bearer {token}"}
        if caller_thread_id:
            headers[CALLER_HEADER] = caller_thread_id
        timeout = httpx2.Timeout(
            self.read_timeout, connect=self.connect_timeout, pool=self.connect_timeout
        )
        try:
            async with httpx2.AsyncClient(
                base_url=base_url.rstrip("/"),
                headers=headers,
                timeout=timeout,
                transport=self.transport,
            ) as client:
                response = await client.post(OPS_PATH + op_id, json=params)
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            message = (
                f"the dispatch daemon is not reachable at {base_url} "
                f"({type(exc).__name__}: {exc})"
            )
            return unreachable(message), None
        except httpx2.TimeoutException:
            timed_out = error_result(
                "timeout",
                f"dispatch did not answer op {op_id} within {self.read_timeout:g}s",
                exit_status=EXIT_UNREACHABLE,
                hint="`dispatch daemon status` and `dispatch daemon log` show why",
            )
            return timed_out, None
        except httpx2.HTTPError as exc:
            return unreachable(f"talking to dispatch at {base_url} failed: {exc}"), None
        return self.interpret(op_id, response), response.status_code

    @staticmethod
    def interpret(op_id: str, response: httpx2.Response) -> types.CallToolResult:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return ok_result(body)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "code" in error:
            return error_result(
                str(error["code"]),
                str(error.get("message", "")),
                exit_status=int(error.get("exit_status", EXIT_INTERNAL)),
                hint=str(error.get("hint") or ""),
                http_status=response.status_code,
                data=error.get("data") if isinstance(error.get("data"), dict) else None,
            )
        # No error envelope: not dispatch's REST API (a proxy, an old daemon).
        hint = SKEW_FIX if response.status_code in (404, 405) else ""
        return error_result(
            "internal",
            f"op {op_id}: HTTP {response.status_code} from dispatch without a "
            f"dispatch error body: {response.text[:200]}",
            exit_status=EXIT_INTERNAL,
            hint=hint,
            http_status=response.status_code,
        )
