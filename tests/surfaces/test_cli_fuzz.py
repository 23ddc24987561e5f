"""Every verb of the op registry, fed bad arguments: exit 2, a message, no traceback.

The cases are derived from each op's published input schema, so a new verb
is covered as soon as it is registered: its required arguments left out,
and each argument given a value of the wrong type, one longer than its
schema allows, and one holding a NUL byte. The other required arguments
get valid values, so each case tests the one bad argument. The CLI runs
in-process with no daemon: nothing may reach the app-server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dispatchsite.core.registry import Op, load_ops
from dispatchsite.surfaces.argv import flag_for
from dispatchsite.surfaces.cli import main

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    op: Op
    kind: str
    field: str
    argv: list[str]

    def __str__(self) -> str:
        return f"{self.op.cli} [{self.kind} {self.field}]"


def scalar(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional property."""
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    return branches[0] if len(branches) == 1 else prop


def valid_value(prop: dict[str, Any]) -> Any:
    prop = scalar(prop)
    if "enum" in prop:
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    kind = prop.get("type")
    if kind == "integer" or kind == "number":
        return max(prop.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [valid_value(prop.get("items", {"type": "string"}))]
    return "/tmp" if prop.get("pattern") == "^/" else "x"


def argv_for(op: Op, values: dict[str, Any], props: dict[str, Any]) -> list[str]:
    argv = op.cli.split()
    for name in op.positionals:
        if name in values:
            argv.append(str(values[name]))
    for name, value in values.items():
        if name in op.positionals:
            continue
        kind = scalar(props[name]).get("type")
        if kind == "boolean" and isinstance(value, bool):
            argv.append(flag_for(name) if value else "--no-" + flag_for(name)[2:])
        elif isinstance(value, list):
            for item in value:
                argv += [flag_for(name), str(item)]
        else:
            argv += [flag_for(name), str(value)]
    if op.intent == "destroy":
        argv.append("--yes")  # so the bad value, not the prompt, is refused
    return argv


def bad_values(prop: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    prop = scalar(prop)
    kind = prop.get("type")
    if "enum" in prop:
        yield "wrong-type", "no-such-choice"
        yield "over-long", "x" * 10_000
    elif kind == "string":
        limit = prop.get("maxLength")
        assert limit is not None, "every published string has a maxLength"
        yield "over-long", "x" * (limit + 1)
        yield "nul", "a\x00b"
    elif kind in ("integer", "number"):
        yield "wrong-type", "not-a-number"
        yield "over-long", "9" * 5000
    elif kind == "boolean":
        yield "wrong-type", "maybe"
    elif kind == "array":
        item = prop.get("items", {})
        if item.get("type") == "string":
            yield "nul", ["a\x00b"]


def cases() -> Iterator[Case]:
    for op in sorted(load_ops().values(), key=lambda o: o.id):
        schema = op.input_schema()
        props: dict[str, Any] = schema.get("properties", {})
        required = [n for n in schema.get("required", []) if n in props]
        valid = {name: valid_value(props[name]) for name in required}
        if required:
            yield Case(op, "missing", ",".join(required), argv_for(op, {}, props))
        for name, prop in props.items():
            for kind, value in bad_values(prop):
                argv = argv_for(op, {**valid, name: value}, props)
                if kind == "wrong-type" and scalar(prop).get("type") == "boolean":
                    argv.append(f"{flag_for(name)}={value}")
                yield Case(op, kind, name, argv)


ALL = list(cases())


def test_it_derives_cases_for_every_verb() -> None:
    covered = {case.op.id for case in ALL}
    assert covered == {op.id for op in load_ops().values() if op.input.model_fields}
    assert {case.kind for case in ALL} >= {"missing", "wrong-type", "over-long", "nul"}


@pytest.mark.parametrize("case", ALL, ids=str)
def test_it_exits_2_with_a_message_and_no_traceback(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(case.argv)
    out, err = capsys.readouterr()

    assert "Traceback" not in err and "Traceback" not in out
    assert status == 2, (str(case), err[-500:])
    error = json.loads(err.strip().splitlines()[-1])["error"]
    assert error["code"] == "validation"
    assert error["message"].strip()
