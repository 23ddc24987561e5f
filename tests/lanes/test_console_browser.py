"""The console in headless Chromium: dashboard, API docs, admin actions, live page.

One stack (daphne, worker, fake app-server) serves every test here; each
test makes its own lanes. Assertions are on what the page shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium, logged_in_page, web_stack
from tests.support.stack import Stack

LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1:\d+/")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with web_stack(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    with chromium() as running:
        yield running


def dashboard_row(page: Any, ref: str) -> str:
    return f"#dash-lanes tr[data-ref='{ref}']"


def test_it_updates_the_dashboard_when_a_lane_changes_state(
    stack: Stack, browser: Any, tmp_path: Path
) -> None:
    lane = stack.cli_ok("new", "--name", "dash", "--no-send")
    page = logged_in_page(browser, stack, "/")
    row = dashboard_row(page, lane["ref"])
    page.wait_for_selector(f"{row} .dash-status")
    page.wait_for_selector("#dash-conn[data-state=live]")
    assert page.inner_text(f"{row} .dash-turn") == "no turns yet"
    assert page.get_attribute(f"{row} a[href$='/live']", "href") == (
        f"/lanes/{lane['ref']}/live"
    )
    stack.cli_ok("send", lane["ref"], "[[slow:0.3]] working")
    # Busy while the turn runs, without reloading the page ...
    page.wait_for_selector(f"{row} .dash-status[data-status=busy]", timeout=20000)
    assert page.inner_text(f"{row} .dash-turn").startswith("Turn 1 inProgress")
    page.screenshot(path=str(tmp_path / "dashboard-busy.png"))
    # ... and idle with a completed turn once it ends.
    page.wait_for_selector(f"{row} .dash-status[data-status=idle]", timeout=30000)
    assert page.inner_text(f"{row} .dash-turn").startswith("Turn 1 completed")
    # A lane created after the page opened appears too.
    later = stack.cli_ok("new", "--name", "dash-later", "--no-send")
    page.wait_for_selector(dashboard_row(page, later["ref"]), timeout=20000)
    # Filters narrow the rows.
    page.select_option("#dash-filters select[name=source]", "attached")
    page.wait_for_selector("#dash-empty:not([hidden])")
    assert "source=attached" in page.url
    page.close()


def test_it_serves_the_api_docs_without_the_internet(
    stack: Stack, browser: Any
) -> None:
    page = logged_in_page(browser, stack, "/admin/")
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if LOCAL.match(route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{stack.web_url}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "dispatch" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock")
    assert outside == []
    page.close()
