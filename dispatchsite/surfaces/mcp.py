"""The MCP surface: `dispatch mcp`, a thin client of the REST API.

Tools are derived from the op registry, grouped by workflow and safety
boundary (`Op.mcp_tool`): one tool per group, each call naming its `op`
(`Op.mcp_action`). A group never mixes intents, so the read-only,
destructive and idempotent annotations are exact for every op in it.

Every call is one `POST /api/v1/ops/{op_id}` against the daemon's web
process. The adapter never touches the ORM on the call path, so it works
against a remote dispatch as well as a local one. The single exception is
the local token bootstrap (see `resolve_token`).

The low-level `mcp.server.lowlevel.Server` is used rather than `MCPServer`:
the registry already has JSON schemas and `MCPServer` derives a tool's
input schema from a Python signature, which cannot express the
`{op, oneOf: [...]}` shape.
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx2
import mcp_types as types
from mcp.server.lowlevel import Server

from dispatchsite.core.registry import Op, internal_fields, load_ops, public_schema

SERVER_NAME = "dispatch"
OPS_PATH = "/api/v1/ops/"
# Must match dispatchsite.surfaces.rest.CALLER_HEADER; not imported from
# there because that module pulls in ninja, which `dispatch mcp` never needs.
CALLER_HEADER = "X-Dispatch-Caller-Thread-Id"
TOKEN_NAME = "mcp-local"
TOKEN_FILE = "mcp-token"

# Connection refused is instant; this only bounds a black-holed host, so a
# stopped daemon is reported within seconds instead of hanging the model.
CONNECT_TIMEOUT_S = 2.0
# Some ops legitimately wait on the app-server (new, send, watch).
READ_TIMEOUT_S = 120.0

UP_FIX = "run `dispatch up` (or point DISPATCH_URL at a running dispatch)"
TOKEN_FIX = (
    "set DISPATCH_TOKEN to a token from `dispatch token create <name>`, or run "
    "`dispatch up` so `dispatch mcp` can create its own local token"
)
SKEW_FIX = (
    "the daemon may run another dispatch version; restart it with "
    "`dispatch down` then `dispatch up`"
)

# Same exit status as the CLI: unreachable daemon and app-server trouble
# both leave the caller unable to act until the stack is fixed.
EXIT_UNREACHABLE = 8
EXIT_ROUTE = 2
EXIT_UNAUTHORIZED = 7  # as dispatchsite.surfaces.auth.UnauthorizedError
EXIT_INTERNAL = 1

Resolver = str | None | Callable[[], str | None]


class McpProjectionError(RuntimeError):
    """The registry cannot be projected onto MCP tools (a programming error)."""


# -- projection: registry -> tools --------------------------------------------


def default_action(op: Op) -> str:
    return op.mcp_action or op.id.replace("-", "_")


def tool_ops() -> dict[str, dict[str, Op]]:
    """tool name -> {action: Op}, in registry order; raises on a clash."""
    tools: dict[str, dict[str, Op]] = {}
    for op in load_ops().values():
        if not op.mcp_tool:
            raise McpProjectionError(f"op {op.id!r} has no MCP tool group")
        actions = tools.setdefault(op.mcp_tool, {})
        action = default_action(op)
        if action in actions:
            raise McpProjectionError(
                f"{op.mcp_tool}: action {action!r} names both "
                f"{actions[action].id!r} and {op.id!r}"
            )
        actions[action] = op
    for tool, actions in tools.items():
        intents = {op.intent for op in actions.values()}
        if len(intents) > 1:
            # Annotations are per tool; a mixed group would advertise a
            # destructive op as read-only (or the reverse).
            raise McpProjectionError(
                f"{tool} mixes intents {sorted(intents)}; split it so its "
                "annotations stay exact"
            )
    return tools


def mcp_tool_table() -> dict[str, dict[str, str]]:
    """tool -> {action: op_id}: the routing table of the MCP surface."""
    return {
        tool: {action: op.id for action, op in actions.items()}
        for tool, actions in tool_ops().items()
    }


def tool_annotations(ops: Mapping[str, Op]) -> types.ToolAnnotations:
    intents = {op.intent for op in ops.values()}
    return types.ToolAnnotations(
        read_only_hint=intents == {"read"},
        destructive_hint="destroy" in intents,
        idempotent_hint=all(op.idempotent for op in ops.values()),
    )


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: renames.get(v, v) if k == "$ref" else _rewrite_refs(v, renames)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _hoist_defs(
    schema: dict[str, Any], defs: dict[str, Any], where: str
) -> dict[str, Any]:
    """`schema` without its `$defs`, which move into the shared `defs`.

    pydantic refs are "#/$defs/Name" and the variants sit inside one
    document, so definitions must live at its root. Two different models
    with one name (from different apps) are told apart by the op id.
    """
    own = schema.pop("$defs", {})
    renames = {
        f"#/$defs/{name}": f"#/$defs/{where}.{name}"
        for name, definition in own.items()
        if name in defs and defs[name] != definition
    }
    schema = _rewrite_refs(schema, renames)
    for name, definition in own.items():
        key = f"{where}.{name}" if f"#/$defs/{name}" in renames else name
        defs[key] = _rewrite_refs(definition, renames)
    return schema


def _tidy_property(schema: dict[str, Any]) -> dict[str, Any]:
    # Titles repeat the key and cli_* keys are CLI rendering hints; both only
    # cost the model tokens.
    return {
        k: v for k, v in schema.items() if k != "title" and not k.startswith("cli_")
    }


def tool_input_schema(ops: Mapping[str, Op]) -> dict[str, Any]:
    """`{op: enum, oneOf: [one strict object per action]}`."""
    defs: dict[str, Any] = {}
    variants = []
    for action, op in ops.items():
        schema = _hoist_defs(copy.deepcopy(public_schema(op.input)), defs, op.id)
        variants.append(
            {
                "type": "object",
                "title": action,
                "description": op.summary,
                "properties": {
                    "op": {"const": action},
                    **{
                        name: _tidy_property(prop)
                        for name, prop in schema.get("properties", {}).items()
                    },
                },
                "required": ["op", *schema.get("required", [])],
                "additionalProperties": False,
            }
        )
    result: dict[str, Any] = {
        "type": "object",
        "properties": {
            "op": {
                "type": "string",
                "enum": list(ops),
                "description": "the operation to run; see the tool description",
            }
        },
        "required": ["op"],
        "oneOf": variants,
    }
    if defs:
        result["$defs"] = defs
    return result


def tool_output_schema(ops: Mapping[str, Op]) -> dict[str, Any]:
    # anyOf, not oneOf: outputs allow extra keys, so one result can match
    # several ops' schemas and oneOf would reject it.
    defs: dict[str, Any] = {}
    variants = []
    for op in ops.values():
        variants.append(_hoist_defs(copy.deepcopy(op.output_schema()), defs, op.id))
    result: dict[str, Any] = {"type": "object", "anyOf": variants}
    if defs:
        result["$defs"] = defs
    return result


def tool_description(tool: str, ops: Mapping[str, Op]) -> str:
    intent = next(iter(ops.values())).intent
    lines = [f"dispatch {intent} ops. Pass `op` and that op's arguments:"]
    lines += [f"- {action}: {op.summary}" for action, op in ops.items()]
    return "\n".join(lines)


def build_tools() -> list[types.Tool]:
    return [
        types.Tool(
            name=tool,
            description=tool_description(tool, ops),
            input_schema=tool_input_schema(ops),
            output_schema=tool_output_schema(ops),
            annotations=tool_annotations(ops),
        )
        for tool, ops in tool_ops().items()
    ]


# -- results ------------------------------------------------------------------


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


# -- the REST client ----------------------------------------------------------


def _resolve(value: Resolver) -> str | None:
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
        base_url = await anyio.to_thread.run_sync(_resolve, self.base_url)
        if not base_url:
            return unreachable("dispatch is not running: no daemon URL is known")
        token = await anyio.to_thread.run_sync(_resolve, self.token)
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


# -- the server ---------------------------------------------------------------


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
            _resolve(caller_thread_id)
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


# -- where the daemon and the token are ---------------------------------------


def local_base_url() -> str | None:
    """$DISPATCH_URL, else the URL the local supervisor recorded."""
    url = os.environ.get("DISPATCH_URL")
    if url:
        return url
    from dispatchsite.runtime import home

    state = home.read_json(home.state_file())
    value = state.get("url") if state else None
    return value if isinstance(value, str) and value else None


def token_file() -> Path:
    from dispatchsite.runtime import home

    return home.run_dir() / TOKEN_FILE


def _read_token(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return value or None


def _local_db_ready() -> bool:
    # Opening a missing SQLite file would create an empty database as a side
    # effect; only bootstrap against one that `dispatch up` already made.
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "sqlite3" in db["ENGINE"]:
        return Path(str(db["NAME"])).is_file()
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def resolve_token(rejected: str | None = None) -> str | None:
    """$DISPATCH_TOKEN, else run/mcp-token, else a new local token.

    The bootstrap makes the plugin work with no set-up on the machine that
    runs dispatch: the first `dispatch mcp` that can open the local registry
    creates an ApiToken named "mcp-local" and keeps its raw value in
    run/mcp-token (0600, inside the 0700 run directory). `rejected` is a
    token the API just refused (revoked, or from a reset registry): it is
    replaced rather than returned again. Against a remote dispatch, set
    DISPATCH_TOKEN instead.
    """
    token = os.environ.get("DISPATCH_TOKEN")
    if token:
        return token
    path = token_file()
    token = _read_token(path)
    if (token and token != rejected) or not path.parent.is_dir():
        return token
    if not _local_db_ready():
        return None
    try:
        from lanes.tokens import api_token_create, api_token_revoke
    except ImportError:
        return None
    from django.db import DatabaseError

    from dispatchsite.core.errors import DispatchError

    # Several MCP servers (one per Codex session) may start at once; one
    # token is enough for all of them.
    with _file_lock(path.with_name(TOKEN_FILE + ".lock")):
        token = _read_token(path)
        if token and token != rejected:
            return token
        try:
            try:
                _, raw = api_token_create(name=TOKEN_NAME)
            except DispatchError:
                # The name is held by a token whose raw value is lost (the
                # file was deleted or refused): nobody can present it, so
                # replace it.
                api_token_revoke(name=TOKEN_NAME)
                _, raw = api_token_create(name=TOKEN_NAME)
        except (DatabaseError, DispatchError):
            return None
        tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(raw + "\n")
        os.replace(tmp, path)
        return raw


class CachedToken:
    """The session's token: resolved when first needed, renewed when refused."""

    def __init__(
        self, resolve: Callable[[str | None], str | None] = resolve_token
    ) -> None:
        self._resolve = resolve
        self._token: str | None = None

    def __call__(self) -> str | None:
        if self._token is None:
            self._token = self._resolve(None)
        return self._token

    def refused(self, token: str) -> str | None:
        """The API answered 401 to `token`: a replacement, or None."""
        if token == self._token:
            self._token = self._resolve(token)
        return self._token if self._token != token else None


# -- transports ---------------------------------------------------------------


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
    import anyio

    from dispatchsite.core.errors import ValidationError

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
