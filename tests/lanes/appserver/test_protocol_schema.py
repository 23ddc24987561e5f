"""Dispatch's use of the app-server protocol, checked against codex's own schema.

`codex app-server generate-json-schema --experimental` (dispatch initializes
with `experimentalApi`) writes the protocol of the binary under test
(DISPATCH_CODEX_BIN). Every method dispatch names, every param it builds and
every notification field it reads must be in it; a codex upgrade that
renames or drops one fails here with the list of what moved, before a user
meets it.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lanes.models import Lane
from lanes.turns import (
    SANDBOX_POLICIES,
    thread_instruction_params,
    thread_settings_params,
    turn_start_params,
)
from tests.support.codex_env import codex_binary

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(codex_binary() is None, reason="codex binary not installed"),
]

REPO = Path(__file__).resolve().parents[3]
SOURCES = ("lanes", "triggers", "workspaces", "dispatchsite")
METHOD = re.compile(r"^[a-z][A-Za-z]*(?:/[a-z][A-Za-z_]*)+$")
# Method-shaped strings that are not app-server methods.
NOT_PROTOCOL = {"application/json", "text/plain", "text/html"}
# Methods dispatch probes and does without on a codex that lacks them.
OPTIONAL = {
    "thread/rollback": "`lane rollback` answers capability_unavailable",
    # A server request dispatch answers when asked; 0.171 no longer asks.
    "currentTime/read": "answered only if codex sends it",
}
# The notification and response fields dispatch reads, by schema definition.
READS: dict[str, set[str]] = {
    "TurnStartedNotification": {"threadId", "turn"},
    "TurnCompletedNotification": {"threadId", "turn"},
    "Turn": {"id", "status", "error", "items", "startedAt", "completedAt"},
    "TurnError": {"message"},
    "TurnStartResponse": {"turn"},
    "TurnsPage": {"data", "nextCursor"},
    "ThreadTurnsListResponse": {"data", "nextCursor"},
    "ThreadStatusChangedNotification": {"threadId", "status"},
    "ErrorNotification": {"threadId", "turnId", "error", "willRetry"},
    "ItemStartedNotification": {"threadId", "turnId", "item"},
    "ItemCompletedNotification": {"threadId", "turnId", "item"},
    "AgentMessageDeltaNotification": {"threadId", "turnId", "itemId", "delta"},
    "ServerRequestResolvedNotification": {"threadId", "requestId"},
    "ThreadGoalUpdatedNotification": {"threadId", "goal"},
    "ThreadStartResponse": {"thread", "cwd", "model", "modelProvider"},
    "ThreadReadResponse": {"thread"},
}
# Enum values dispatch compares against.
ENUMS: dict[str, set[str]] = {
    "TurnStatus": {"completed", "failed", "interrupted", "inProgress"},
    "ThreadActiveFlag": {"waitingOnApproval"},
    "TurnItemsView": {"summary", "full", "notLoaded"},
}
THREAD_STATUS_TYPES = {"idle", "active", "systemError", "notLoaded"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("schema")
    home = tmp_path_factory.mktemp("codex-home")
    binary = codex_binary()
    assert binary is not None
    subprocess.run(
        [binary, "app-server", "generate-json-schema", "--experimental", "--out", out],
        env={"CODEX_HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=120,
    )
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    definitions: dict[str, Any] = {}
    methods: dict[str, dict[str, Any]] = {}
    for name in (
        "codex_app_server_protocol.v2.schemas.json",
        "codex_app_server_protocol.schemas.json",
        "ClientRequest.json",
        "ServerRequest.json",
        "ServerNotification.json",
    ):
        document = json.loads((out / name).read_text())
        for key, value in document.get("definitions", {}).items():
            definitions.setdefault(key, value)
        for variant in document.get("oneOf", []):
            props = variant.get("properties", {})
            if "method" in props:
                methods[props["method"]["enum"][0]] = props.get("params") or {}
    return {"version": version, "definitions": definitions, "methods": methods}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def properties(schema: dict[str, Any], name_or_node: str | dict[str, Any]) -> set[str]:
    """Every property a definition allows, across its variants."""
    if isinstance(name_or_node, str):
        node = schema["definitions"].get(name_or_node)
        if node is None:
            return set()
    else:
        node = name_or_node
    node = resolve(schema, node)
    found = set(node.get("properties", {}))
    for key in ("allOf", "anyOf", "oneOf"):
        for part in node.get(key, []):
            found |= properties(schema, part)
    return found


def enum_values(schema: dict[str, Any], node: dict[str, Any]) -> set[str]:
    node = resolve(schema, node)
    values = set(node.get("enum", []))
    if "const" in node:
        values.add(node["const"])
    for part in node.get("oneOf", []) + node.get("anyOf", []):
        values |= enum_values(schema, part)
    return values


def source_files() -> list[Path]:
    return [p for root in SOURCES for p in sorted((REPO / root).rglob("*.py"))]


def used_methods() -> dict[str, str]:
    """Method-shaped strings in dispatch's code -> where the first one is."""
    found: dict[str, str] = {}
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and METHOD.match(node.value)
                and not node.value.startswith("dispatch/")
                and node.value not in NOT_PROTOCOL
            ):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                found.setdefault(node.value, where)
    live = REPO / "lanes/static/lanes/live.js"
    for lineno, line in enumerate(live.read_text().splitlines(), 1):
        for name in re.findall(r'case "([^"]+)"', line):
            if METHOD.match(name) and not name.startswith("dispatch/"):
                found.setdefault(name, f"{live.relative_to(REPO)}:{lineno}")
    return found


def literal_params() -> list[tuple[str, set[str], str]]:
    """(method, keys, where) for each call passing a method and a dict literal."""
    constants = {
        name: value
        for name, value in vars(
            __import__("lanes.appserver.protocol").appserver.protocol
        ).items()
        if isinstance(value, str) and METHOD.match(value)
    }
    calls: list[tuple[str, set[str], str]] = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            for first, second in zip(node.args, node.args[1:], strict=False):
                method = None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    method = first.value
                elif isinstance(first, ast.Name):
                    method = constants.get(first.id)
                if not method or not METHOD.match(method):
                    continue
                if isinstance(second, ast.Dict) and all(
                    isinstance(k, ast.Constant) for k in second.keys
                ):
                    keys = {
                        str(k.value) for k in second.keys if isinstance(k, ast.Constant)
                    }
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    calls.append((method, keys, where))
    return calls


def drift(version: str, problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in sorted(problems))
    return f"dispatch's protocol use has drifted from {version}:\n{lines}"


def test_it_finds_every_method_dispatch_uses_in_the_schema(
    schema: dict[str, Any],
) -> None:
    used = used_methods()
    # The collector sees the core verbs: it cannot pass by finding nothing.
    assert {"turn/start", "turn/completed", "thread/resume"} <= set(used)
    missing = [
        f"{method} (used at {where})"
        for method, where in used.items()
        if method not in schema["methods"] and method not in OPTIONAL
    ]
    assert not missing, drift(schema["version"], missing)


def test_it_sends_only_params_the_schema_defines(schema: dict[str, Any]) -> None:
    problems: list[str] = []

    def check(method: str, keys: set[str], where: str) -> None:
        if method not in schema["methods"]:
            return  # an absent method is the method test's finding
        allowed = properties(schema, schema["methods"][method])
        for key in sorted(keys - allowed):
            problems.append(f"{method} param {key!r} (sent at {where})")

    calls = literal_params()
    assert any(method == "thread/resume" for method, _, _ in calls)
    for method, keys, where in calls:
        check(method, keys, where)
    lane = Lane(
        thread_id="t",
        cwd="/",
        runtime_settings={
            "sandbox": "workspace-write",
            "approval_policy": "untrusted",
            "model": "m",
            "effort": "low",
            "summary": "auto",
            "output_schema": {"type": "object"},
        },
    )
    params = turn_start_params(lane, "hi", client_message_id="c")
    check("turn/start", set(params), "lanes/turns.py turn_start_params")
    text_keys = {key for item in params["input"] for key in item}
    user_input = properties(schema, "UserInput")
    problems += [f"UserInput field {k!r}" for k in sorted(text_keys - user_input)]
    policy_types = set()
    for variant in schema["definitions"]["SandboxPolicy"].get("oneOf", []):
        policy_types |= set(variant["properties"]["type"].get("enum", []))
    for policy in SANDBOX_POLICIES.values():
        if policy["type"] not in policy_types:
            problems.append(f"sandboxPolicy type {policy['type']!r}")
    start = {
        **thread_settings_params(
            model="m", sandbox="read-only", approval_policy="never"
        ),
        **thread_instruction_params(base="b", developer="d"),
    }
    check("thread/start", set(start), "lanes/turns.py thread_*_params")
    assert not problems, drift(schema["version"], problems)


def test_it_reads_only_fields_and_values_the_schema_defines(
    schema: dict[str, Any],
) -> None:
    problems: list[str] = []
    for name, fields in READS.items():
        if name not in schema["definitions"]:
            problems.append(f"definition {name} is gone")
            continue
        allowed = properties(schema, name)
        problems += [f"{name}.{f}" for f in sorted(fields - allowed)]
    for name, values in ENUMS.items():
        enum = enum_values(schema, schema["definitions"][name])
        problems += [f"{name} value {v!r}" for v in sorted(values - enum)]
    types = set()
    for variant in schema["definitions"]["ThreadStatus"].get("oneOf", []):
        types |= set(variant["properties"]["type"].get("enum", []))
    problems += [
        f"ThreadStatus type {t!r}" for t in sorted(THREAD_STATUS_TYPES - types)
    ]
    assert not problems, drift(schema["version"], problems)
