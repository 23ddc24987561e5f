"""Every op is on every surface: CLI, REST (OpenAPI) and MCP.

A new op that a surface misses fails here, naming the op and the surface.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import pytest

from dispatchsite.core.commands import load_commands
from dispatchsite.core.registry import Op, internal_fields, load_ops
from dispatchsite.surfaces.cli import build_parser

OPS = load_ops()
REST_META_ROUTES = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ops"),
    ("GET", "/api/v1/cli-snapshot"),
    ("POST", "/api/v1/ops/{op_id}"),
}


def op_ids(ops: dict[str, Op] = OPS) -> list[str]:
    return sorted(ops)


# -- CLI ----------------------------------------------------------------------


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)parser of the CLI by its word path."""
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, child in action.choices.items():
                found.update(walk(child, (*path, word)))
    return found


CLI = walk(build_parser()[0])


def cli_dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions}


@pytest.mark.parametrize("op_id", op_ids())
def test_it_has_every_op_on_the_cli(op_id: str) -> None:
    op = OPS[op_id]
    parser = CLI.get(tuple(op.cli_words))
    assert parser is not None, f"op {op_id}: no `dispatch {op.cli}` command"
    if op.cli_switch:
        flags = {s for a in parser._actions for s in a.option_strings}
        assert op.cli_switch in flags, f"op {op_id}: `{op.cli_switch}` flag missing"
    missing = set(op.input.model_fields) - internal_fields(op.input) - cli_dests(parser)
    assert not missing, f"op {op_id}: input fields without a CLI argument: {missing}"
    if op.intent == "destroy":
        assert "yes" in cli_dests(parser), f"destroy op {op_id} has no --yes"


def test_it_has_no_cli_command_without_an_op_or_a_surface_command() -> None:
    spelled = {tuple(op.cli_words) for op in OPS.values()}
    commands = {tuple(c.spelling.split()) for c in load_commands().values()}
    leaves = {
        path
        for path, parser in CLI.items()
        if path
        and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    }
    assert leaves <= spelled | commands, leaves - spelled - commands


# -- REST ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    from dispatchsite.surfaces.api import api

    return api.get_openapi_schema()


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if len(schema.get("allOf", ())) == 1:  # ninja's shape for an optional body
        schema = schema["allOf"][0]
    ref = schema.get("$ref")
    if ref:
        return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize("op_id", op_ids())
def test_it_has_every_op_in_the_openapi_document(
    op_id: str, openapi: dict[str, Any]
) -> None:
    op = OPS[op_id]
    method, path = op.http
    assert path, f"op {op_id}: no http=(METHOD, path); every op needs a REST route"
    operation = operations(openapi).get((method.upper(), "/api/v1" + path))
    assert operation is not None, f"op {op_id}: {method} /api/v1{path} not served"
    assert operation["x-dispatch-op"] == op_id
    assert operation["x-dispatch-intent"] == op.intent
    params = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    body_fields = (
        set(resolve(openapi, body["schema"]).get("properties", {})) if body else set()
    )
    hidden = internal_fields(op.input)
    for name in op.input.model_fields:
        where = {("path", name), ("query", name)} & params
        if name in hidden:
            assert not where and name not in body_fields, f"{op_id}: {name} is internal"
        else:
            assert where or name in body_fields, f"op {op_id}: field {name} not on REST"


def test_it_serves_no_rest_route_without_an_op(openapi: dict[str, Any]) -> None:
    routed = {(op.http[0].upper(), "/api/v1" + op.http[1]) for op in OPS.values()}
    extra = set(operations(openapi)) - routed - REST_META_ROUTES
    assert not extra, f"REST routes that are no op: {extra}"


def test_it_gives_each_rest_route_to_one_op() -> None:
    routes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for op in OPS.values():
        routes[(op.http[0].upper(), op.http[1])].append(op.id)
    clashes = {route: ids for route, ids in routes.items() if len(ids) > 1}
    assert not clashes


# -- MCP ----------------------------------------------------------------------


def mcp_table() -> dict[str, dict[str, str]]:
    from dispatchsite.surfaces.mcp.projection import mcp_tool_table

    return mcp_tool_table()


@pytest.mark.parametrize("op_id", op_ids())
def test_it_names_an_mcp_tool_for_every_op(op_id: str) -> None:
    op = OPS[op_id]
    assert op.mcp_tool, f"op {op_id}: no mcp_tool"
    assert op.mcp_tool.startswith("dispatch_"), f"op {op_id}: tool {op.mcp_tool!r}"


def test_it_never_mixes_intents_in_one_mcp_tool() -> None:
    intents: dict[str, set[str]] = defaultdict(set)
    for op in OPS.values():
        intents[op.mcp_tool].add(op.intent)
    mixed = {tool: sorted(i) for tool, i in intents.items() if len(i) > 1}
    assert not mixed, f"MCP tools mixing intents: {mixed}"


def test_it_routes_every_op_through_exactly_one_mcp_action() -> None:
    table = mcp_table()
    routed = [op_id for actions in table.values() for op_id in actions.values()]
    assert sorted(routed) == op_ids(), "ops missing from or doubled in the MCP table"
    for tool, actions in table.items():
        for action, op_id in actions.items():
            op = OPS[op_id]
            assert op.mcp_tool == tool, (
                f"{op_id} routed under {tool}, not {op.mcp_tool}"
            )
            if op.mcp_action:
                assert action == op.mcp_action, f"{op_id}: action {action}"
        assert len({OPS[i].intent for i in actions.values()}) == 1, tool
