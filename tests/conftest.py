from __future__ import annotations

import os

import pytest

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
