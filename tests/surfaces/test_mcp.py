"""The MCP surface: projection of the registry, the REST adapter, `dispatch mcp`.

Three layers: the tool table and schemas derived from the op registry (pure);
the adapter in-process against a stubbed REST API (httpx2.MockTransport);
and `dispatch mcp` as a subprocess, driven by the SDK's stdio and HTTP
clients against a real daemon (redis, worker on the fake app-server, daphne)
and, in the e2e test, launched by the real codex app-server from the
plugin's .mcp.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from dispatchsite.core.registry import Op, OpInput, OpOutput, internal_fields, load_ops
from dispatchsite.surfaces.daemon import CachedToken, local_base_url, resolve_token
from dispatchsite.surfaces.mcp import projection
from dispatchsite.surfaces.mcp.client import Resolver
from dispatchsite.surfaces.mcp.serve import require_bearer
from dispatchsite.surfaces.mcp.server import build_server
from tests.support.codex_env import codex_binary, write_codex_home
from tests.support.mcp_http import mcp_http_server
from tests.support.mock_responses import MockResponsesServer
from tests.support.stack import Stack, free_port

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugins" / "dispatch"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the tool table and schemas -----------------------------------------------


def test_it_routes_every_registry_op_exactly_once() -> None:
    table = projection.mcp_tool_table()

    routed = [op_id for actions in table.values() for op_id in actions.values()]

    assert sorted(routed) == sorted(load_ops())
    assert len(routed) == len(set(routed))
    for tool, actions in table.items():
        for action, op_id in actions.items():
            assert load_ops()[op_id].mcp_tool == tool
            assert projection.default_action(load_ops()[op_id]) == action


def test_it_groups_the_thread_ops_by_safety_boundary() -> None:
    table = projection.mcp_tool_table()

    assert {"new", "send", "stop"} <= set(table["dispatch_thread_write"])
    assert {"roster", "show"} <= set(table["dispatch_thread_read"])
    assert {"status", "log"} <= set(table["dispatch_daemon_read"])


def test_it_builds_an_op_enum_with_one_strict_variant_per_op() -> None:
    table = projection.mcp_tool_table()
    ops = load_ops()

    for tool in projection.build_tools():
        schema = tool.input_schema
        actions = table[tool.name]
        assert schema["type"] == "object"
        assert schema["required"] == ["op"]
        assert schema["properties"]["op"]["enum"] == list(actions)
        variants = {v["properties"]["op"]["const"]: v for v in schema["oneOf"]}
        assert list(variants) == list(actions)
        for action, variant in variants.items():
            op = ops[actions[action]]
            public = set(op.input.model_fields) - internal_fields(op.input)
            assert variant["additionalProperties"] is False
            assert set(variant["properties"]) == public | {"op"}
            assert variant["required"][0] == "op"
            required = {n for n, f in op.input.model_fields.items() if f.is_required()}
            assert set(variant["required"][1:]) == required - internal_fields(op.input)


def test_it_publishes_valid_json_schemas_that_check_calls() -> None:
    import jsonschema

    tools = {t.name: t for t in projection.build_tools()}
    for tool in tools.values():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema or {})
    write = jsonschema.Draft202012Validator(tools["dispatch_thread_write"].input_schema)

    assert write.is_valid({"op": "send", "lane": "@a", "text": "hi", "mode": "queue"})
    assert not write.is_valid({"op": "send", "lane": "@a"})
    assert not write.is_valid({"op": "send", "lane": "@a", "text": "hi", "bogus": 1})
    assert not write.is_valid({"op": "send", "lane": "@a", "text": "hi", "mode": "x"})
    assert not write.is_valid({"op": "roster"})


def test_it_hides_internal_fields_and_cli_hints_from_schemas() -> None:
    [write] = [t for t in projection.build_tools() if t.name == "dispatch_thread_write"]
    send = next(
        v
        for v in write.input_schema["oneOf"]
        if v["properties"]["op"]["const"] == "send"
    )

    assert "caller_thread_id" not in send["properties"]
    assert "cli_choice_flags" not in send["properties"]["mode"]
    assert send["properties"]["mode"]["enum"] == [
        "send",
        "steer",
        "queue",
        "interject",
        "context",
    ]
    assert "caller_thread_id" not in json.dumps(write.input_schema)


def test_it_publishes_each_ops_output_schema() -> None:
    ops = load_ops()
    table = projection.mcp_tool_table()

    for tool in projection.build_tools():
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
        titles = [v.get("title") for v in tool.output_schema["anyOf"]]
        expected = [ops[op_id].output.__name__ for op_id in table[tool.name].values()]
        assert titles == expected


def test_it_sets_exact_annotations() -> None:
    ops = load_ops()
    table = projection.mcp_tool_table()

    for tool in projection.build_tools():
        group = [ops[op_id] for op_id in table[tool.name].values()]
        hints = tool.annotations
        assert hints is not None
        assert hints.read_only_hint is all(op.intent == "read" for op in group)
        assert hints.destructive_hint is any(op.intent == "destroy" for op in group)
        assert hints.idempotent_hint is all(op.idempotent for op in group)
    by_name = {t.name: t.annotations for t in projection.build_tools()}
    assert by_name["dispatch_thread_read"] == types.ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True
    )
    assert by_name["dispatch_thread_write"] == types.ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False
    )
    if "dispatch_thread_destroy" in by_name:
        hints = by_name["dispatch_thread_destroy"]
        assert hints is not None
        assert hints.destructive_hint is True and hints.read_only_hint is False


def fake_op(op_id: str, tool: str, intent: Any, action: str = "") -> Op:
    return Op(
        id=op_id,
        summary=op_id,
        intent=intent,
        idempotent=True,
        input=OpInput,
        output=OpOutput,
        handler=lambda data, ctx: {},
        cli=op_id,
        mcp_tool=tool,
        mcp_action=action,
    )


def test_it_refuses_a_group_that_mixes_intents(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {
        "peek": fake_op("peek", "dispatch_x", "read"),
        "wipe": fake_op("wipe", "dispatch_x", "destroy"),
    }
    monkeypatch.setattr(projection, "load_ops", lambda: registry)

    with pytest.raises(projection.McpProjectionError, match="mixes intents"):
        projection.build_tools()


def test_it_refuses_two_ops_behind_one_action(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {
        "a": fake_op("a", "dispatch_x", "read", action="get"),
        "b": fake_op("b", "dispatch_x", "read", action="get"),
    }
    monkeypatch.setattr(projection, "load_ops", lambda: registry)

    with pytest.raises(projection.McpProjectionError, match="'get' names both"):
        projection.mcp_tool_table()


def test_it_keeps_same_named_models_of_different_ops_apart() -> None:
    import jsonschema
    from pydantic import BaseModel

    def with_item(kind: type) -> type[OpInput]:
        item = type("Item", (BaseModel,), {"__annotations__": {"value": kind}})
        return type("In", (OpInput,), {"__annotations__": {"item": item}})

    ops = {
        "a": fake_op("a", "dispatch_x", "read"),
        "b": fake_op("b", "dispatch_x", "read"),
    }
    ops["a"] = Op(**{**vars(ops["a"]), "input": with_item(int)})
    ops["b"] = Op(**{**vars(ops["b"]), "input": with_item(str)})

    schema = projection.tool_input_schema(ops)

    assert set(schema["$defs"]) == {"Item", "b.Item"}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"op": "a", "item": {"value": 1}})
    assert validator.is_valid({"op": "b", "item": {"value": "x"}})
    assert not validator.is_valid({"op": "b", "item": {"value": 1}})
    assert not validator.is_valid({"op": "a", "item": {"value": 1}, "extra": 1})


def test_it_registers_the_mcp_command() -> None:
    from dispatchsite.core.commands import load_commands
    from dispatchsite.surfaces.commands import mcp as mcp_command

    command = load_commands()["mcp"]

    assert command.run is mcp_command.mcp_command


# -- the adapter, in process, against a stubbed REST API ---------------------

Handler = Callable[[httpx2.Request], httpx2.Response]


@asynccontextmanager
async def stub_session(
    handler: Handler, *, token: Resolver = "tok", **kwargs: Any
) -> AsyncIterator[Client]:
    server = build_server(
        "http://dispatch.test", token, transport=httpx2.MockTransport(handler), **kwargs
    )
    async with Client(server) as client:
        yield client


def rest_error(
    status: int, code: str, exit_status: int, hint: str = ""
) -> httpx2.Response:
    body: dict[str, Any] = {
        "code": code,
        "message": f"{code}!",
        "exit_status": exit_status,
    }
    if hint:
        body["hint"] = hint
    return httpx2.Response(status, json={"error": body})


def call_meta(**values: Any) -> types.RequestParamsMeta:
    # An open map at runtime; mypy does not know PEP 728 extra_items yet.
    return cast(types.RequestParamsMeta, values)


STATUS = {
    "lanes": 0,
    "idle": 0,
    "busy": 0,
    "waiting_approval": 0,
    "error": 0,
    "archived": 0,
    "active": 0,
    "triggers": 0,
    "triggers_enabled": 0,
    "daemon": {"running": True},
}


@pytest.mark.anyio
async def test_it_posts_the_op_and_returns_structured_content() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=STATUS)

    async with stub_session(handler) as client:
        result = await client.call_tool("dispatch_daemon_read", {"op": "status"})

    assert result.is_error is False
    assert result.structured_content == STATUS
    assert json.loads(result.content[0].text) == STATUS  # type: ignore[union-attr]
    [request] = seen
    assert request.method == "POST"
    assert request.url.path == "/api/v1/ops/status"
    assert request.headers["authorization"] == "Bearer tok"
    assert json.loads(request.content) == {}


@pytest.mark.anyio
async def test_it_maps_rest_errors_to_error_results_with_meta() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return rest_error(404, "not_found", 4, hint="see `dispatch list`")

    async with stub_session(handler) as client:
        result = await client.call_tool(
            "dispatch_thread_read", {"op": "show", "lane": "@nope"}
        )

    assert result.is_error is True
    assert result.meta is not None
    assert result.meta["code"] == "not_found"
    assert result.meta["dispatchCode"] == "not_found"
    assert result.meta["exitCode"] == 4
    assert result.meta["httpStatus"] == 404
    body = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert body == {
        "error": {
            "code": "not_found",
            "message": "not_found!",
            "exit_status": 4,
            "hint": "see `dispatch list`",
        }
    }


@pytest.mark.anyio
async def test_it_reports_a_response_without_an_error_body_as_skew() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, text="<html>nope</html>")

    async with stub_session(handler) as client:
        result = await client.call_tool("dispatch_daemon_read", {"op": "status"})

    assert result.is_error is True
    assert result.meta is not None
    assert result.meta["code"] == "internal"
    assert "dispatch down" in result.meta["hint"]


@pytest.mark.anyio
async def test_it_rejects_unknown_ops_and_tools_as_route_errors() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError("no request expected")

    async with stub_session(handler) as client:
        bad_op = await client.call_tool("dispatch_thread_read", {"op": "send"})
        no_op = await client.call_tool("dispatch_thread_read", {})
        bad_tool = await client.call_tool("dispatch_nothing", {"op": "x"})

    for result in (bad_op, no_op, bad_tool):
        assert result.is_error is True
        assert result.meta is not None
        assert result.meta["code"] == "mcp_route_error"
        assert result.meta["exitCode"] == 2
    assert "roster" in bad_op.meta["hint"]  # type: ignore[index]


@pytest.mark.anyio
async def test_it_sends_the_calling_thread_as_a_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEX_THREAD_ID", "thread-from-env")
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return rest_error(400, "validation", 2)

    send = {"op": "send", "lane": "@b", "text": "hi", "intro": True}
    turn = {"x-codex-turn-metadata": {"thread_id": "thread-from-turn-meta"}}
    both = call_meta(threadId="thread-from-meta", **turn)
    async with stub_session(handler) as client:
        # A caller-supplied internal field is dropped, never forwarded.
        await client.call_tool(
            "dispatch_thread_write", {**send, "caller_thread_id": "spoofed"}
        )
        # What codex 0.169 sends with every tools/call.
        await client.call_tool("dispatch_thread_write", send, meta=both)
        await client.call_tool("dispatch_thread_write", send, meta=call_meta(**turn))

    callers = [r.headers["x-dispatch-caller-thread-id"] for r in seen]
    assert callers == ["thread-from-env", "thread-from-meta", "thread-from-turn-meta"]
    for request in seen:
        assert json.loads(request.content) == {
            "lane": "@b",
            "text": "hi",
            "intro": True,
        }


@pytest.mark.anyio
async def test_it_says_dispatch_up_when_no_daemon_is_known() -> None:
    server = build_server(lambda: None, "tok")

    async with Client(server) as client:
        result = await client.call_tool("dispatch_daemon_read", {"op": "status"})

    assert result.is_error is True
    assert result.meta is not None
    assert result.meta["code"] == "daemon_unreachable"
    assert result.meta["exitCode"] == 8
    assert "dispatch up" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_it_says_dispatch_up_when_the_daemon_refuses_connections() -> None:
    server = build_server(f"http://127.0.0.1:{free_port()}", "tok")

    async with Client(server) as client:
        began = time.monotonic()
        result = await client.call_tool("dispatch_daemon_read", {"op": "status"})
        took = time.monotonic() - began

    assert took < 5
    assert result.is_error is True
    assert result.meta is not None
    assert result.meta["code"] == "daemon_unreachable"
    assert "dispatch up" in result.meta["hint"]


@pytest.mark.anyio
async def test_it_asks_for_a_token_when_none_is_available() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError("no request expected")

    async with stub_session(handler, token=lambda: None) as client:
        result = await client.call_tool("dispatch_daemon_read", {"op": "status"})

    assert result.is_error is True
    assert result.meta is not None
    assert result.meta["code"] == "unauthorized"
    assert "DISPATCH_TOKEN" in result.meta["hint"]


@pytest.mark.anyio
async def test_it_renews_a_refused_local_token_once() -> None:
    issued = iter(["old", "new"])
    renewals: list[str | None] = []

    def resolve(rejected: str | None) -> str | None:
        renewals.append(rejected)
        return next(issued)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.headers["authorization"] == "Bearer new":
            return httpx2.Response(200, json=STATUS)
        return rest_error(401, "unauthorized", 7)

    async with stub_session(handler, token=CachedToken(resolve)) as client:
        first = await client.call_tool("dispatch_daemon_read", {"op": "status"})
        second = await client.call_tool("dispatch_daemon_read", {"op": "status"})

    assert first.is_error is False and second.is_error is False
    assert renewals == [None, "old"]


@pytest.mark.anyio
async def test_it_guards_http_with_the_current_token() -> None:
    current = ["first"]

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = require_bearer(inner, lambda: current[0])
    transport = httpx2.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
        anonymous = await http.post("/mcp")
        good = await http.post("/mcp", headers={"Authorization": "Bearer first"})
        current[0] = "second"
        stale = await http.post("/mcp", headers={"Authorization": "Bearer first"})

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert good.status_code == 200 and good.text == "ok"
    assert stale.status_code == 401


# -- finding the daemon and the token ------------------------------------------


def test_it_prefers_dispatch_url_over_the_supervisor_state(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    settings.DISPATCH_RUN_DIR = tmp_path
    (tmp_path / "supervisor.json").write_text(json.dumps({"url": "http://127.0.0.1:1"}))
    monkeypatch.delenv("DISPATCH_URL", raising=False)

    assert local_base_url() == "http://127.0.0.1:1"
    monkeypatch.setenv("DISPATCH_URL", "http://example.test:9")
    assert local_base_url() == "http://example.test:9"
    monkeypatch.delenv("DISPATCH_URL")
    (tmp_path / "supervisor.json").unlink()
    assert local_base_url() is None


@pytest.fixture
def token_home(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    settings.DISPATCH_RUN_DIR = run
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)
    # The test database is in memory; there is no file to look for.
    monkeypatch.setattr("dispatchsite.surfaces.daemon._local_db_ready", lambda: True)
    return run


@pytest.mark.django_db
def test_it_bootstraps_one_local_token(token_home: Path) -> None:
    from lanes.models import ApiToken
    from lanes.tokens import api_token_authenticate

    first = resolve_token()
    again = resolve_token()

    assert first and first == again
    path = token_home / "mcp-token"
    assert path.read_text().strip() == first
    assert path.stat().st_mode & 0o777 == 0o600
    token = api_token_authenticate(first)
    assert token is not None and token.name == "mcp-local"
    assert ApiToken.objects.filter(name="mcp-local").count() == 1


@pytest.mark.django_db
def test_it_replaces_a_refused_or_lost_local_token(token_home: Path) -> None:
    from lanes.tokens import api_token_authenticate

    first = resolve_token()
    renewed = resolve_token(rejected=first)
    (token_home / "mcp-token").unlink()
    after_loss = resolve_token()

    assert first and renewed and after_loss
    assert len({first, renewed, after_loss}) == 3
    assert api_token_authenticate(first) is None
    assert api_token_authenticate(renewed) is None
    assert api_token_authenticate(after_loss) is not None


def test_it_prefers_dispatch_token(
    monkeypatch: pytest.MonkeyPatch, token_home: Path
) -> None:
    monkeypatch.setenv("DISPATCH_TOKEN", "dsp_from_env")

    assert resolve_token() == "dsp_from_env"
    assert resolve_token(rejected="dsp_from_env") == "dsp_from_env"
    assert not (token_home / "mcp-token").exists()


def test_it_does_not_create_a_database_to_bootstrap(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "run").mkdir()
    settings.DISPATCH_RUN_DIR = tmp_path / "run"
    # Only the name is read; no connection is opened while it is swapped.
    missing = tmp_path / "no.sqlite3"
    monkeypatch.setitem(settings.DATABASES["default"], "NAME", missing)
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)

    assert resolve_token() is None
    assert not missing.exists()


# -- the plugin bundle -----------------------------------------------------------


def test_it_ships_a_plugin_that_runs_dispatch_mcp() -> None:
    manifest = json.loads((PLUGIN / ".codex-plugin" / "plugin.json").read_text())
    servers = json.loads((PLUGIN / ".mcp.json").read_text())["mcpServers"]

    assert manifest["name"] == "dispatch"
    assert manifest["mcpServers"] == "./.mcp.json"
    assert manifest["skills"] == "./skills/"
    assert servers == {"dispatch": {"command": "dispatch", "args": ["mcp"]}}
    for skill in ("dispatch", "dm"):
        text = (PLUGIN / "skills" / skill / "SKILL.md").read_text()
        front = text.split("---")[1]
        assert f"name: {skill}\n" in front
        assert "description: " in front


# -- `dispatch mcp` against a running daemon --------------------------------------


@dataclass
class Daemon:
    stack: Stack
    url: str
    token: str

    @property
    def root(self) -> Path:
        return self.stack.root


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """redis + worker (fake app-server) + daphne, and a token named "test"."""
    stack = Stack(root=tmp_path_factory.mktemp("mcp")).start(web=True)
    try:
        assert stack.web_url is not None
        token = stack.cli_ok("token", "create", "test")["token"]
        yield Daemon(stack=stack, url=stack.web_url, token=token)
    finally:
        stack.stop()


def mcp_env(daemon: Daemon, **extra: str) -> dict[str, str]:
    return {
        **daemon.stack.env,
        "DISPATCH_URL": daemon.url,
        "DISPATCH_TOKEN": daemon.token,
        **extra,
    }


def stdio(env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "dispatchsite.cli", "mcp"],
        env=env,
        cwd=str(REPO),
    )


@pytest.mark.anyio
async def test_it_drives_a_lane_lifecycle_over_stdio(daemon: Daemon) -> None:
    workdir = daemon.root / "work"
    workdir.mkdir(exist_ok=True)

    async with Client(stdio(mcp_env(daemon))) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        created = await client.call_tool(
            "dispatch_thread_write",
            {"op": "new", "name": "alpha", "cwd": str(workdir), "text": "hello"},
        )
        lane = created.structured_content
        assert created.is_error is False, created.content
        assert lane is not None
        daemon.stack.wait_lane(lane["id"], lambda row: row["status"] == "idle")
        sent = await client.call_tool(
            "dispatch_thread_write",
            {"op": "send", "lane": lane["ref"], "text": "second message"},
        )
        assert sent.is_error is False, sent.content
        daemon.stack.wait_lane(
            lane["id"],
            lambda row: (
                row["status"] == "idle"
                and row["latest_turn_id"]
                == (sent.structured_content or {}).get("turn_id")
            ),
        )
        shown = await client.call_tool(
            "dispatch_thread_read",
            {"op": "show", "lane": "@alpha", "include_transcript": True},
        )
        missing = await client.call_tool(
            "dispatch_thread_read", {"op": "show", "lane": "@nobody"}
        )
        archived = await client.call_tool(
            "dispatch_thread_destroy", {"op": "archive", "target": lane["ref"]}
        )
        roster = await client.call_tool("dispatch_thread_read", {"op": "roster"})

    assert set(listed) == set(projection.mcp_tool_table())
    hints = {
        name: (a.read_only_hint, a.destructive_hint, a.idempotent_hint)
        for name, tool in listed.items()
        if (a := tool.annotations) is not None
    }
    assert hints["dispatch_thread_read"] == (True, False, True)
    assert hints["dispatch_thread_write"] == (False, False, False)
    assert hints["dispatch_thread_destroy"][:2] == (False, True)
    assert hints["dispatch_daemon_read"] == (True, False, True)
    assert lane["handle"] == "@alpha" and lane["message_accepted"] is True
    assert sent.structured_content is not None
    assert sent.structured_content["op"] == "send"
    assert shown.is_error is False, shown.content
    info = shown.structured_content
    assert info is not None and info["id"] == lane["id"]
    assert info["latest_turn"]["status"] == "completed"
    texts = [item["text"] for item in info["transcript"]]
    assert any("second message" in text for text in texts)
    assert missing.is_error is True
    assert missing.meta is not None
    assert (missing.meta["code"], missing.meta["exitCode"]) == ("not_found", 4)
    assert archived.is_error is False, archived.content
    assert archived.structured_content is not None
    assert archived.structured_content["status"] == "archived"
    assert roster.structured_content is not None
    assert lane["id"] not in [x["id"] for x in roster.structured_content["lanes"]]


@pytest.mark.anyio
async def test_it_sends_an_intro_from_the_calling_lane(daemon: Daemon) -> None:
    workdir = daemon.root / "work"
    workdir.mkdir(exist_ok=True)
    async with Client(stdio(mcp_env(daemon))) as client:
        lanes = []
        for name in ("sender", "target"):
            created = await client.call_tool(
                "dispatch_thread_write",
                {"op": "new", "name": name, "cwd": str(workdir), "send": False},
            )
            assert created.structured_content is not None, created.content
            lanes.append(created.structured_content)
    sender, target = lanes

    async with Client(stdio(mcp_env(daemon))) as client:
        # codex names the calling thread in each call's _meta.
        result = await client.call_tool(
            "dispatch_thread_write",
            {"op": "send", "lane": target["ref"], "text": "ping", "intro": True},
            meta=call_meta(threadId=sender["id"]),
        )
        assert result.is_error is False, result.content
        daemon.stack.wait_lane(target["id"], lambda row: row["status"] == "idle")
        shown = await client.call_tool(
            "dispatch_thread_read",
            {"op": "show", "lane": target["ref"], "include_transcript": True},
        )

    assert shown.structured_content is not None, shown.content
    transcript = shown.structured_content["transcript"]
    user = next(i["text"] for i in transcript if i["text"].startswith("ping"))
    assert "dispatch (dm): [@sender]" in user
    assert f"dispatch send {sender['ref']}" in user


@pytest.mark.anyio
async def test_it_names_dispatch_up_quickly_when_the_daemon_is_down(
    tmp_path: Path,
) -> None:
    # A supervisor.json left behind by a killed daemon: the URL is known,
    # nothing listens there.
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    dead = f"http://127.0.0.1:{free_port()}"
    (home / "run" / "supervisor.json").write_text(json.dumps({"url": dead}))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISPATCH_", "CODEX_"))
    }
    env.update(DISPATCH_HOME=str(home), DISPATCH_TOKEN="dsp_unused")

    async with Client(stdio(env)) as client:
        began = time.monotonic()
        result = await client.call_tool("dispatch_daemon_read", {"op": "status"})
        took = time.monotonic() - began

    assert took < 5
    assert result.is_error is True
    assert result.meta is not None
    assert result.meta["code"] == "daemon_unreachable"
    assert dead in result.content[0].text  # type: ignore[union-attr]
    assert "dispatch up" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_it_serves_streamable_http_behind_the_same_token(daemon: Daemon) -> None:
    env = mcp_env(daemon)
    with mcp_http_server(env, daemon.root) as url:
        async with httpx2.AsyncClient() as anonymous:
            refused = await anonymous.post(url, json={})
        auth = {"Authorization": f"Bearer {env['DISPATCH_TOKEN']}"}
        async with httpx2.AsyncClient(headers=auth, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                status = await client.call_tool(
                    "dispatch_daemon_read", {"op": "status"}
                )

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert names == set(projection.mcp_tool_table())
    assert status.is_error is False
    assert status.structured_content is not None
    assert "lanes" in status.structured_content


# -- end to end: the real codex app-server calls the tool ---------------------------

CODEX = codex_binary()


def plugin_mcp_toml(env: dict[str, str]) -> str:
    """`[mcp_servers.dispatch]` from the plugin's .mcp.json, plus `env`."""
    server = json.loads((PLUGIN / ".mcp.json").read_text())["mcpServers"]["dispatch"]
    lines = [
        "[mcp_servers.dispatch]",
        f"command = {json.dumps(server['command'])}",
        f"args = {json.dumps(server['args'])}",
        "startup_timeout_sec = 30",
        "",
        "[mcp_servers.dispatch.env]",
        *(f"{key} = {json.dumps(value)}" for key, value in env.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.e2e
@pytest.mark.skipif(CODEX is None, reason="codex binary not found")
def test_it_lets_a_codex_model_call_dispatch_tools(daemon: Daemon) -> None:
    from tests.e2e.test_mock_codex import AppServer

    assert CODEX is not None
    env = {
        "DISPATCH_URL": daemon.url,
        "DISPATCH_TOKEN": daemon.token,
        "DISPATCH_HOME": daemon.stack.env["DISPATCH_HOME"],
        # So the plugin's bare `dispatch` command resolves to this venv.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    codex_home = daemon.root / "codex-e2e"
    with MockResponsesServer() as mock:
        # No model catalog: with one, codex hides MCP tools behind tool_search.
        write_codex_home(
            codex_home,
            base_url=mock.base_url,
            catalog=False,
            extra_toml=plugin_mcp_toml(env),
        )
        app = AppServer(CODEX, codex_home, daemon.root / "codex-e2e.stderr")
        try:
            app.initialize()
            workdir = daemon.root / "codex-work"
            workdir.mkdir(exist_ok=True)
            thread_id = app.start_thread(workdir)
            # The first request only lists tools that are ready by then.
            app.wait_for(
                "mcpServer/startupStatus/updated",
                lambda p: p["name"] == "dispatch" and p["status"] == "ready",
                timeout=30,
            )
            mock.queue(
                {
                    "kind": "function_call",
                    "name": "dispatch_daemon_read",
                    "namespace": "mcp__dispatch",
                    "arguments": {"op": "status"},
                }
            )
            turn_id = app.start_turn(thread_id, "how is dispatch doing?")
            turn = app.wait_turn_completed(turn_id, timeout=60)
        finally:
            app.close()
        first, second = mock.requests("/v1/responses")[:2]

    assert turn["status"] == "completed"
    [namespace] = [
        t
        for t in first["body"]["tools"]
        if t.get("type") == "namespace" and t.get("name") == "mcp__dispatch"
    ]
    assert {t["name"] for t in namespace["tools"]} == set(projection.mcp_tool_table())
    [daemon_read] = [
        t for t in namespace["tools"] if t["name"] == "dispatch_daemon_read"
    ]
    actions = list(projection.mcp_tool_table()["dispatch_daemon_read"])
    assert daemon_read["parameters"]["properties"]["op"]["enum"] == actions
    outputs = [
        item
        for item in second["body"]["input"]
        if item.get("type") == "function_call_output"
    ]
    assert outputs, second["body"]["input"]
    text = json.dumps(outputs[-1]["output"])
    assert '\\"lanes\\"' in text or '"lanes"' in text
    assert "daemon_unreachable" not in text
