"""schemathesis, an independent API fuzzer, against /api/v1/openapi.json.

Every operation of the published document gets a bounded number of
generated requests, in-process through the WSGI app, with a valid token and
no worker running (so ops that need the app-server answer their documented
503). Each response must: not be an unexpected server error, carry the JSON
error body when it is an error, use a status the operation documents, and
match the schema published for that status.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckContext
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from lanes.services import lane_register
from lanes.tokens import api_token_create

pytestmark = pytest.mark.django_db

# Bounded so the whole file runs in seconds; raise it for a deeper run.
EXAMPLES = int(os.environ.get("DISPATCH_FUZZ_EXAMPLES", "8"))
# What a missing worker, an unreachable app-server or a codex without the
# method is answered with: documented, and the only 5xx a request may get.
DOCUMENTED_5XX = {
    501: {"capability_unavailable"},
    502: {"app_server"},
    503: {"host_unavailable"},
}

APP = get_wsgi_application()
SCHEMA = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)
SCHEMA.config.generation.update(
    max_examples=EXAMPLES, with_security_parameters=False, allow_x00=True
)
# The lane that half the generated lane selectors are replaced with, so the
# lane ops get past their lookup.
LANE_THREAD = "019a0000-0000-7000-8000-00000000a1fa"
RESULTS = list(SCHEMA.get_all_operations())
OPERATIONS = [result.ok() for result in RESULTS if isinstance(result, Ok)]


def error_body(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """4xx and 5xx answers are `{"error": {"code", "message", "exit_status"}}`;
    a 5xx only for a documented reason (no worker, no such method)."""
    status = response.status_code
    if status < 400:
        return None
    label = case.operation.label
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{label}: {status} is not JSON: {response.content!r:.300}"
        ) from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and set(body) == {"error"}, (label, body)
    assert isinstance(error.get("code"), str) and error["code"], (label, body)
    assert isinstance(error.get("message"), str) and error["message"], (label, body)
    assert isinstance(error.get("exit_status"), int), (label, body)
    if status >= 500:
        allowed = DOCUMENTED_5XX.get(status, set())
        assert error["code"] in allowed, f"{label}: unexpected {status}: {body}"
    return None


CHECKS = [
    error_body,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
]


@pytest.fixture
def auth(settings: Any) -> dict[str, str]:
    # The body limit has its own test (a 413); here an over-long field must
    # reach the op and be refused by name.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
    raw = api_token_create(name="fuzzer")[1]
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def lane_ref() -> str:
    lane = lane_register(
        thread_id=LANE_THREAD, title="alpha", source="own", cwd="/tmp", host="t"
    )
    return lane.ref


def test_it_fuzzes_every_operation() -> None:
    invalid = [result.err() for result in RESULTS if not isinstance(result, Ok)]
    assert invalid == []
    paths = {op.path for op in OPERATIONS}
    assert "/api/v1/lanes" in paths and "/api/v1/lanes/{lane}/send" in paths
    assert len(OPERATIONS) >= 30


def fuzz(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    auth: dict[str, str],
    lane_ref: str,
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        lane = (case.path_parameters or {}).get("lane")
        # Half the cases name the existing lane, half a generated one.
        if isinstance(lane, str) and len(lane) % 2:
            case.path_parameters["lane"] = lane_ref
        if operation.path.endswith("/watch"):
            # Answer at once rather than wait for events that never come.
            case.query = {**(case.query or {}), "timeout": 0}
        case.call_and_validate(headers=auth, checks=checks)

    run()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_it_answers_every_generated_request_as_documented(
    operation: Any, auth: dict[str, str], lane_ref: str
) -> None:
    fuzz(operation, GenerationMode.POSITIVE, CHECKS, auth, lane_ref)


# Operations that take input: only those can be sent data outside the schema.
WITH_INPUT = [
    op for op in OPERATIONS if len(op.path_parameters) or len(op.query) or op.body
]


@pytest.mark.parametrize("operation", WITH_INPUT, ids=lambda op: op.label)
def test_it_refuses_every_request_outside_the_schema(
    operation: Any, auth: dict[str, str], lane_ref: str
) -> None:
    """Data the schema does not allow ({"full": 0}, an empty selector, an
    unknown enum value) is a JSON 4xx, never accepted."""
    checks = [error_body, status_code_conformance, negative_data_rejection]
    fuzz(operation, GenerationMode.NEGATIVE, checks, auth, lane_ref)
