"""The REST surface: one ninja route per op, generated from the op registry.

`op.http = (METHOD, "/path/{field}")`: `{field}` segments are input fields;
for GET the other fields come from the query string, for POST/PUT/PATCH/
DELETE from a JSON object body. Fields marked INTERNAL never appear; the
calling Codex thread (for `send --intro`) travels in the
`X-Dispatch-Caller-Thread-Id` header instead.

Destroy ops take no confirmation parameter over REST: the explicit method
and path are the confirmation, as MCP's `destructiveHint` leaves prompting
to the client. Their OpenAPI operations say so and carry
`x-dispatch-intent: destroy`.

`POST /ops/{op_id}` runs any op with its input as the JSON body; the MCP
adapter uses it so that it needs no per-op route knowledge.

Views are sync on purpose: under ASGI, Django runs each request's sync code
on a thread of its own (asgiref's per-request ThreadSensitiveContext), so an
op blocked on the worker (turn/start, a watch long poll) stalls no other
request, and auth and the op share one thread and one DB connection.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

from annotated_types import MaxLen
from django.http import HttpRequest, HttpResponse
from ninja import Body, Path, Query, Router, Schema
from pydantic import BaseModel, ConfigDict, create_model

from dispatchsite.core.errors import NotFoundError, ValidationError
from dispatchsite.core.origin import Origin, local_user
from dispatchsite.core.registry import Op, execute, internal_fields, load_ops
from dispatchsite.surfaces.auth import request_scope
from dispatchsite.surfaces.daemon import is_cli_token

CALLER_HEADER = "X-Dispatch-Caller-Thread-Id"
# The hash of the CLI snapshot a thin client parsed with (dispatchsite.thin).
SNAPSHOT_HEADER = "X-Dispatch-Cli-Snapshot"
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PATH_FIELD = re.compile(r"{(\w+)}")
PATH_SEGMENT_MAX = 1024
# Internal fields the local CLI fills itself and may send (the stdin it read
# for a `-` path: dispatchsite.surfaces.cli.file_params).
CLI_INTERNAL = frozenset({"stdin"})


class ErrorBody(Schema):
    code: str
    message: str
    exit_status: int
    hint: str | None = None
    data: dict[str, Any] | None = None


class ErrorOut(Schema):
    error: ErrorBody


class HealthOut(Schema):
    ok: bool
    version: str


# 413: a body over DATA_UPLOAD_MAX_MEMORY_SIZE (dispatchsite.surfaces.api);
# 503: the lane's host has no worker (HostUnavailableError).
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 500, 501, 502, 503)


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(
        json.dumps(data, ensure_ascii=False, default=str),
        status=status,
        content_type="application/json",
    )


def op_context(request: HttpRequest) -> Origin:
    token = getattr(request, "auth", None)
    caller = request.headers.get(CALLER_HEADER) or None
    if token is not None and is_cli_token(token):
        # The thin `dispatch` client: its token is readable only by the OS
        # user the daemon runs as, so the call is that user's CLI call.
        return Origin(surface="cli", actor=local_user(), caller_thread_id=caller)
    return Origin(
        surface="rest",
        caller_thread_id=caller,
        actor=f"token:{token.name}" if token is not None else "",
    )


def run_scoped(
    request: HttpRequest, op_id: str, params: dict[str, Any]
) -> HttpResponse:
    """Run an op within the scopes of the request's token (lanes.tokens)."""
    scope = request_scope(request)
    origin = op_context(request)
    scope.authorize(op_id, params, origin)
    return json_response(scope.narrow(op_id, execute(op_id, params, origin)))


def camel(op_id: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_ ]", op_id))


def sub_model(
    name: str,
    fields: dict[str, Any],
    *,
    forbid_extra: bool,
    strict: bool = False,
    max_length: int | None = None,
) -> type[BaseModel]:
    # A JSON body is typed, so it is checked as strictly as the op's input; a
    # path or query string is text that ninja converts first.
    config = ConfigDict(extra="forbid" if forbid_extra else "ignore", strict=strict)
    definitions: dict[str, Any] = {}
    for field, info in fields.items():
        part = copy.copy(info)
        if max_length is not None and info.annotation is str:
            # A URL segment is a selector or an id, never a text.
            limits = [m.max_length for m in part.metadata if isinstance(m, MaxLen)]
            part.metadata = [m for m in part.metadata if not isinstance(m, MaxLen)]
            part.metadata.append(MaxLen(min([max_length, *limits])))
        definitions[field] = (info.annotation, part)
    return create_model(name, __config__=config, **definitions)


def published_output(op: Op) -> type[BaseModel]:
    """The op's output under a name of its own in the OpenAPI components.

    ninja files every model under its class name, and a later model of the
    same name silently replaces an earlier one (two apps' `HistoryOut`), so
    an operation would publish another's schema.
    """
    return create_model(f"{camel(op.id)}Output", __base__=op.output)


def route_path(op: Op) -> str:
    return op.http[1]


def path_sort_key(op: Op) -> tuple[tuple[int, str], ...]:
    # Django matches URL patterns in order: literal segments must come before
    # `{field}` ones, or `/lanes/{lane}` would swallow `/lanes/unmanaged`.
    return tuple(
        (1, "") if PATH_FIELD.fullmatch(seg) else (0, seg)
        for seg in route_path(op).strip("/").split("/")
    )


def description(op: Op) -> str:
    lines = [op.summary + ".", ""]
    lines.append(
        f"Intent: {op.intent}; idempotent: {'yes' if op.idempotent else 'no'}."
    )
    lines.append(
        f"CLI: `dispatch {op.cli}`; MCP: `{op.mcp_tool}` action `{op.mcp_action}`."
    )
    if op.intent == "destroy":
        lines.append(
            "Destructive. No confirmation parameter: sending this request is the "
            "confirmation (the CLI prompts or needs --yes; MCP marks it "
            "destructiveHint)."
        )
    return "\n".join(lines)


def make_view(op: Op) -> Callable[..., HttpResponse]:
    """A ninja view whose signature carries the op's input parts."""
    method, path = op.http
    hidden = internal_fields(op.input)
    public = {n: f for n, f in op.input.model_fields.items() if n not in hidden}
    in_path = PATH_FIELD.findall(path)
    unknown = [n for n in in_path if n not in public]
    if unknown:
        raise RuntimeError(f"op {op.id}: path {path!r} names unknown fields {unknown}")
    rest = {n: f for n, f in public.items() if n not in in_path}
    base = camel(op.id)
    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD)]

    def add(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> None:
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation,
                default=default,
            )
        )

    if in_path:
        model = sub_model(
            f"{base}Path",
            {n: public[n] for n in in_path},
            forbid_extra=False,
            max_length=PATH_SEGMENT_MAX,
        )
        add("path_", Path[model])  # type: ignore[valid-type,misc]
    if rest and method.upper() in BODY_METHODS:
        model = sub_model(f"{base}Body", rest, forbid_extra=True, strict=True)
        optional = all(not f.is_required() for f in rest.values())
        required = inspect.Parameter.empty
        add("body_", Body[model], None if optional else required)  # type: ignore[valid-type,misc]
    elif rest:
        model = sub_model(f"{base}Query", rest, forbid_extra=False)
        add("query_", Query[model])  # type: ignore[valid-type,misc]

    op_id = op.id
    query_names = set(rest) if method.upper() not in BODY_METHODS else set()

    def view(request: HttpRequest, **parts: BaseModel | None) -> HttpResponse:
        unknown = sorted(set(request.GET) - query_names)
        if unknown:
            # ninja reads only the parameters it knows: a misspelt one would
            # be dropped without a word.
            raise ValidationError(
                f"unknown query parameter(s): {', '.join(unknown)}",
                hint=f"{method.upper()} {path} takes: "
                + (", ".join(sorted(query_names)) or "no query parameters"),
            )
        merged: dict[str, Any] = {}
        for part in parts.values():
            if part is not None:
                merged.update(part.model_dump(exclude_unset=True))
        return run_scoped(request, op_id, merged)

    view.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    view.__name__ = f"op_{op.id.replace('-', '_')}"
    view.__doc__ = op.summary
    return view


def generic_params(op: Op, body: Any, origin: Origin) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationError(
            f"the body of POST /ops/{op.id} must be a JSON object of its input",
            hint=f"see `dispatch schema {op.id}`",
        )
    allowed = CLI_INTERNAL if origin.surface == "cli" else frozenset()
    internal = sorted((internal_fields(op.input) - allowed) & body.keys())
    if internal:
        raise ValidationError(
            f"{', '.join(internal)}: internal field(s) cannot be sent",
            hint=f"send the calling thread in the {CALLER_HEADER} header",
        )
    return body


def run_any_op(request: HttpRequest, op_id: str) -> HttpResponse:
    """Run any op; the JSON body is its input (see its input schema)."""
    op = load_ops().get(op_id)
    if op is None:
        raise NotFoundError(f"unknown op {op_id!r}", hint="see GET /api/v1/ops")
    try:
        body = json.loads(request.body) if request.body else None
    except ValueError as exc:
        raise ValidationError(f"the request body is not JSON: {exc}") from None
    params = generic_params(op, body, op_context(request))
    return run_scoped(request, op.id, params)


def stale_snapshot(request: HttpRequest, version: str) -> HttpResponse | None:
    """412 when a thin CLI parsed with another registry's snapshot: it
    fetches the current one and parses again, so no call runs on stale
    spellings."""
    sent = request.headers.get(SNAPSHOT_HEADER)
    if not sent:
        return None
    from dispatchsite.surfaces.cli_snapshot import snapshot_text

    current = snapshot_text(version)[1]
    if sent == current:
        return None
    error = ValidationError(
        "the CLI snapshot this call was parsed with is out of date",
        hint="fetch GET /api/v1/cli-snapshot and parse again",
        data={"snapshot": current},
    )
    return json_response(
        {"error": {**error.as_dict()["error"], "code": "stale_snapshot"}}, status=412
    )


def list_ops(request: HttpRequest) -> HttpResponse:
    """The op table: id, intent, CLI spelling, HTTP route and MCP tool/action."""
    rows = [
        {
            "id": op.id,
            "summary": op.summary,
            "intent": op.intent,
            "idempotent": op.idempotent,
            "cli": op.cli,
            "http": {"method": op.http[0].upper(), "path": "/api/v1" + op.http[1]}
            if op.http[1]
            else None,
            "mcp": {"tool": op.mcp_tool, "action": op.mcp_action},
        }
        for op in load_ops().values()
    ]
    return json_response({"ops": rows})


def build_router(version: str) -> Router:
    """One route per op with an HTTP path, plus /health, /ops, /ops/{id} and
    /cli-snapshot."""
    api = Router()
    errors = dict.fromkeys(ERROR_STATUSES, ErrorOut)

    def health(request: HttpRequest) -> HttpResponse:
        """Liveness; needs no token."""
        return json_response({"ok": True, "version": version})

    api.add_api_operation(
        "/health",
        ["GET"],
        health,
        auth=None,
        response={200: HealthOut},
        operation_id="health",
        tags=["meta"],
    )
    api.add_api_operation(
        "/ops",
        ["GET"],
        list_ops,
        response={200: dict[str, Any], 401: ErrorOut},
        operation_id="ops_list",
        tags=["meta"],
    )

    def cli_snapshot(request: HttpRequest) -> HttpResponse:
        """The CLI's argparse tree as data, for the thin `dispatch` client."""
        from dispatchsite.surfaces.cli_snapshot import snapshot_text

        text, digest = snapshot_text(version)
        response = HttpResponse(text, content_type="application/json")
        response[SNAPSHOT_HEADER] = digest
        return response

    def run_op(request: HttpRequest, op_id: str) -> HttpResponse:
        """Run any op; the JSON body is its input (see its input schema)."""
        return stale_snapshot(request, version) or run_any_op(request, op_id)

    api.add_api_operation(
        "/cli-snapshot",
        ["GET"],
        cli_snapshot,
        response={200: dict[str, Any], 401: ErrorOut},
        operation_id="cli_snapshot",
        tags=["meta"],
    )
    api.add_api_operation(
        "/ops/{op_id}",
        ["POST"],
        run_op,
        response={200: dict[str, Any], **errors, 412: ErrorOut},
        operation_id="ops_run",
        tags=["meta"],
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": {"type": "object"}}},
                "required": False,
            }
        },
    )
    routed = [op for op in load_ops().values() if route_path(op)]
    for op in sorted(routed, key=path_sort_key):
        api.add_api_operation(
            route_path(op),
            [op.http[0].upper()],
            make_view(op),
            response={200: published_output(op), **errors},
            operation_id=op.id.replace("-", "_"),
            summary=op.summary,
            description=description(op),
            tags=[route_path(op).strip("/").split("/")[0]],
            openapi_extra={
                "x-dispatch-op": op.id,
                "x-dispatch-intent": op.intent,
                "x-dispatch-idempotent": op.idempotent,
            },
        )
    return api
