"""The op registry projected onto MCP tools: one tool per `Op.mcp_tool`.

Pure: no network, no ORM. A projection error is a programming error in the
registry, caught by the tests rather than at a model's call.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import mcp_types as types

from dispatchsite.core.registry import Op, load_ops, public_schema


class McpProjectionError(RuntimeError):
    """The registry cannot be projected onto MCP tools (a programming error)."""


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
