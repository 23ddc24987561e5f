"""The op registry: every verb authored once, every surface derived from it.

An op is id + summary + intent + idempotent flag + input/output schemas +
handler. The CLI, the REST API and the MCP tools are generated from this
table; a parity test keeps them equal. An app declares an op by decorating its
handler with `define_op` in a module of its `ops` package.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pydantic
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from dispatchsite.core.errors import DispatchError, ValidationError
from dispatchsite.core.origin import Origin

Intent = Literal["read", "write", "destroy"]

# Input fields the surfaces fill themselves (e.g. from CODEX_THREAD_ID); they
# never appear as CLI flags or in published schemas.
INTERNAL: JsonDict = {"x-dispatch-internal": True}


def string_problem(text: str) -> str:
    """Why `text` cannot be stored or sent on, or "" when it can."""
    if "\x00" in text:
        return "contains a NUL byte"
    if text.isascii():
        return ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (JSON "\ud800") cannot be encoded anywhere.
        return "contains a lone surrogate (not valid Unicode text)"
    return ""


def unsafe_string(value: Any, where: str) -> tuple[str, str] | None:
    """(field path, problem) of the first unusable string inside `value`."""
    if isinstance(value, str):
        problem = string_problem(value)
        return (where, problem) if problem else None
    if isinstance(value, BaseModel):
        items: Any = value.__dict__.items()
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = unsafe_string(item, f"{where}.{key}" if where else str(key))
        if found is None and isinstance(key, str):
            found = unsafe_string(key, where or "input")
        if found is not None:
            return found
    return None


class OpInput(BaseModel):
    """An op's input. Strict: `{"full": 0}` is no boolean and `"5"` no integer
    (the CLI and REST query strings convert their text before validation), no
    float is NaN or infinite, and strings and integers are bounded (see
    bound_fields); the published schemas say all of it."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if bound_fields(cls):
            cls.model_rebuild(force=True)

    @model_validator(mode="after")
    def _refuse_unsafe_strings(self) -> OpInput:
        # One check for every op on every surface: such strings would fail
        # later (SQLite, JSON encoding, the app-server) as a 500, after side
        # effects.
        found = unsafe_string(self, "")
        if found is not None:
            raise PydanticCustomError(
                "unsafe_string",
                "{field}: {problem}",
                {"field": found[0], "problem": found[1]},
            )
        return self


# Bounds for fields that name none: every published string and integer is
# bounded, so no input reaches SQLite or the app-server unchecked. 256 Ki
# characters stay under the REST body limit (2.5 MB) even as 4-byte UTF-8,
# so an over-long string is a 400 naming the field; an integer past 2**63
# would overflow SQLite, and 2**53 keeps it exact in JSON.
TEXT_MAX = 262_144
INT_MAX = 2**53 - 1


def optional_inner(annotation: Any) -> Any:
    """X for `X | None`, else the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def bound_fields(model: type[BaseModel]) -> bool:
    """Give plain string and integer fields the bounds they lack; True if any
    changed.

    A required string gets minLength 1 (every surface rejects an empty
    selector, name or text anyway), every string a maxLength, every integer
    a range: the schema stays exact for new ops without each one repeating it.
    """
    changed = False
    for info in model.model_fields.values():
        inner = optional_inner(info.annotation)
        kinds = {type(m) for m in info.metadata}
        added: list[Any] = []
        if inner is str:
            if info.is_required() and MinLen not in kinds:
                added.append(MinLen(1))
            if MaxLen not in kinds:
                added.append(MaxLen(TEXT_MAX))
        elif inner is int:
            if not kinds & {Le, Lt}:
                added.append(Le(INT_MAX))
            if not kinds & {Ge, Gt}:
                added.append(Ge(-INT_MAX))
        info.metadata.extend(added)
        changed = changed or bool(added)
    return changed


class OpOutput(BaseModel):
    model_config = ConfigDict(extra="allow")


Handler = Callable[[Any, Origin], Any]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class Op:
    id: str
    summary: str
    intent: Intent
    idempotent: bool
    input: type[OpInput]
    output: type[BaseModel]
    handler: Handler
    # CLI spelling: "send", "goal set", or a composed "list --unmanaged".
    cli: str
    positionals: tuple[str, ...] = ()
    # REST: method and path under /api/v1; {field} segments are input fields.
    http: tuple[str, str] = ("POST", "")
    mcp_tool: str = ""
    mcp_action: str = ""

    @property
    def cli_words(self) -> list[str]:
        return [w for w in self.cli.split() if not w.startswith("--")]

    @property
    def cli_switch(self) -> str | None:
        """The flag that selects this op inside a composed spelling."""
        flags = [w for w in self.cli.split() if w.startswith("--")]
        return flags[0] if flags else None

    def input_schema(self) -> dict[str, Any]:
        return public_schema(self.input)

    def output_schema(self) -> dict[str, Any]:
        return self.output.model_json_schema()


REGISTRY: dict[str, Op] = {}


def define_op(
    *,
    id: str,
    summary: str,
    intent: Intent,
    idempotent: bool,
    input: type[OpInput],
    output: type[BaseModel],
    cli: str,
    positionals: tuple[str, ...] = (),
    http: tuple[str, str],
    mcp_tool: str,
    mcp_action: str = "",
) -> Callable[[H], H]:
    """Register the decorated function as the handler of one op.

    The function is returned unchanged, so it stays callable on its own.
    `idempotent` has no default: writes and destroys differ case by case.
    """

    def register(handler: H) -> H:
        if id in REGISTRY:
            raise RuntimeError(f"op {id!r} defined twice")
        if not mcp_tool:
            raise RuntimeError(f"op {id!r} has no MCP tool group")
        REGISTRY[id] = Op(
            id=id,
            summary=summary,
            intent=intent,
            idempotent=idempotent,
            input=input,
            output=output,
            handler=handler,
            cli=cli,
            positionals=positionals,
            http=http,
            mcp_tool=mcp_tool,
            mcp_action=mcp_action,
        )
        return handler

    return register


def load_ops() -> dict[str, Op]:
    """Every op of every installed app (each app's `ops` module or package)."""
    from dispatchsite.core.autodiscover import discover

    discover("ops")
    return REGISTRY


def internal_fields(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("x-dispatch-internal"):
            names.add(name)
    return names


def public_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    hidden = internal_fields(model)
    if hidden:
        schema["properties"] = {
            k: v for k, v in schema.get("properties", {}).items() if k not in hidden
        }
        schema["required"] = [r for r in schema.get("required", []) if r not in hidden]
    return schema


def validation_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors():
        if not error["loc"] and error["type"] == "unsafe_string":
            parts.append(error["msg"])  # the message names the field
            continue
        where = ".".join(str(p) for p in error["loc"]) or "input"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_input(op: Op, params: dict[str, Any]) -> OpInput:
    try:
        return op.input.model_validate(params)
    except pydantic.ValidationError as exc:
        raise ValidationError(
            f"invalid input for {op.id}: {validation_message(exc)}",
            hint=f"see `dispatch schema {op.cli}`",
        ) from None


def execute(op_id: str, params: dict[str, Any], ctx: Origin) -> dict[str, Any]:
    """Validate, run the handler, and return the JSON-ready output."""
    op = load_ops().get(op_id)
    if op is None:
        raise ValidationError(f"unknown op {op_id!r}", hint="see `dispatch --help`")
    parsed = parse_input(op, params)
    result = op.handler(parsed, ctx)
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    try:
        return op.output.model_validate(result).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        raise DispatchError(
            f"op {op.id} produced output that does not match its schema: "
            f"{validation_message(exc)}"
        ) from None
