from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.codex_env import codex_binary
from tests.support.mock_responses import MockResponsesServer
from tests.support.stack import Stack

# In CI (DISPATCH_REQUIRE_E2E=1) an end-to-end test that skips is a failure:
# a missing codex binary must not pass silently.
REQUIRE_E2E = os.environ.get("DISPATCH_REQUIRE_E2E") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_E2E and report.skipped and item.get_closest_marker("e2e"):
        report.outcome = "failed"
        report.longrepr = (
            f"e2e test skipped but DISPATCH_REQUIRE_E2E=1: {report.longrepr}"
        )


# Process-level scenarios run on the fake app-server and on the real codex
# against the mock Responses server: the same test on both keeps the fake
# honest.
BACKENDS = [
    "fake",
    pytest.param(
        "real",
        marks=[
            pytest.mark.e2e,
            pytest.mark.skipif(
                codex_binary() is None, reason="codex binary not installed"
            ),
        ],
    ),
]


@pytest.fixture
def mock() -> Iterator[MockResponsesServer]:
    with MockResponsesServer() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def start_stack(
    request: pytest.FixtureRequest, tmp_path: Path, mock: MockResponsesServer
) -> Iterator[Callable[..., Stack]]:
    """Start a stack on this test's backend; stopped after the test."""
    started: list[Stack] = []

    def start(*, web: bool = False, extra_env: dict[str, str] | None = None) -> Stack:
        stack = Stack(
            tmp_path,
            codex=request.param,
            mock_base_url=mock.base_url,
            extra_env=extra_env or {},
        )
        started.append(stack)
        return stack.start(web=web)

    yield start
    for stack in started:
        stack.stop()
