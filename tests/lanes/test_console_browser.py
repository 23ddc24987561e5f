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
    # Approval mode: every turn asks to run `echo fake` before it replies.
    root = tmp_path_factory.mktemp("console")
    with web_stack(root, FAKE_APPSERVER_MODE="approval") as running:
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


def test_it_drives_a_lane_from_the_admin_and_audits_it_under_the_admin(
    stack: Stack, browser: Any, tmp_path: Path
) -> None:
    page = logged_in_page(browser, stack, "/admin/lanes/lane/add/")
    page.fill("#id_name", "from-admin")
    page.fill("#id_cwd", str(tmp_path))
    page.fill("#id_text", "hello from the admin")
    page.select_option("#id_sandbox", "read-only")
    page.click("#new-lane input[type=submit]")
    page.wait_for_selector("#console")
    assert "Created @from-admin" in page.inner_text(".messagelist")
    lane = stack.cli_ok("get", "@from-admin")
    assert lane["cwd"] == str(tmp_path)
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    # Queue a message from the lane page; the lane delivers it.
    page.reload()
    page.fill("#console-send textarea", "and then this")
    page.select_option("#console-send select", "queue")
    page.click("#console-send input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert "queued message" in page.inner_text(".messagelist")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    wait_turns = stack.cli_ok("get", "@from-admin", "--include-transcript")
    assert any("and then this" in i["text"] for i in wait_turns["transcript"])
    # Rename, then archive (a destroy op: the page asks first).
    page.click("summary:text('Rename')")
    page.fill("#console-rename input[name=new]", "renamed-in-admin")
    page.click("#console-rename input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    page.click("#console-archive")
    page.wait_for_selector("#confirm-action")
    assert stack.cli_ok("get", lane["ref"])["status"] != "archived"
    page.click("#confirm-action input[type=submit]")
    page.wait_for_selector("#console-restore")
    got = stack.cli_ok("get", lane["ref"])
    assert (got["title"], got["status"]) == ("renamed-in-admin", "archived")
    # The audit log names the admin for each of those ops.
    page.goto(f"{stack.web_url}/admin/lanes/auditentry/?q={lane['ref']}")
    rows = page.eval_on_selector_all(
        "#result_list tbody tr",
        "trs => trs.map(tr => [tr.querySelector('.field-op').textContent,"
        " tr.querySelector('.field-actor').textContent])",
    )
    assert {"new", "queue", "lane-rename", "archive"} <= {
        op for op, actor in rows if actor == "admin:admin"
    }, rows
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    page.close()


TEXTS = "els => els.map(e => e.textContent)"


def live_page(stack: Stack, browser: Any, lane: dict[str, Any]) -> Any:
    page = logged_in_page(browser, stack, f"/lanes/{lane['ref']}/live")
    page.wait_for_selector("#live-conn[data-state=live]")
    return page


def test_it_numbers_turns_and_stops_one_from_the_page(
    stack: Stack, browser: Any, tmp_path: Path
) -> None:
    lane = stack.cli_ok("new", "--name", "numbered", "--text", "first")
    stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    page = live_page(stack, browser, lane)
    page.wait_for_selector(".live-turn[data-number='1'][data-status=completed]")
    assert page.eval_on_selector_all(".live-turn-title", TEXTS) == ["Turn 1"]
    assert page.inner_text(".live-turn-time") != ""
    assert page.is_disabled("#live-stop")
    page.fill("#live-send textarea", "[[slow:0.4]] a long reply")
    page.click("#live-send button[type=submit]")
    page.wait_for_function(
        '[...document.querySelectorAll(\'.live-turn[data-number="2"] .live-item-agent'
        " .live-text')].some(e => e.textContent.length > 0)",
        timeout=20000,
    )
    page.click("#live-stop")
    page.wait_for_selector(
        ".live-turn[data-number='2'][data-status=interrupted]", timeout=20000
    )
    assert page.eval_on_selector_all(".live-turn-title", TEXTS) == ["Turn 1", "Turn 2"]
    bubble = ".live-turn[data-number='2'] .live-item-agent"
    assert page.get_attribute(bubble, "data-state") == "cut-off"
    assert page.inner_text(f"{bubble} .live-badge") == "cut off"
    assert page.is_disabled("#live-stop")
    page.screenshot(path=str(tmp_path / "live-stopped.png"), full_page=True)
    page.close()


def test_it_closes_a_reply_cut_off_by_a_steer(stack: Stack, browser: Any) -> None:
    lane = stack.cli_ok("new", "--name", "steered", "--no-send")
    page = live_page(stack, browser, lane)
    page.fill("#live-send textarea", "[[slow:0.4]] one")
    page.click("#live-send button[type=submit]")
    page.wait_for_function(
        "[...document.querySelectorAll('.live-item-agent .live-text')]"
        ".some(e => e.textContent.length > 0)",
        timeout=20000,
    )
    page.fill("#live-send textarea", "two")
    page.select_option("#live-send select", "steer")
    page.click("#live-send button[type=submit]")
    page.wait_for_selector(".live-turn[data-status=completed]", timeout=30000)
    states = page.eval_on_selector_all(
        ".live-item-agent", "els => els.map(e => e.dataset.state || '')"
    )
    assert states == ["cut-off", ""]
    texts = page.eval_on_selector_all(".live-item-agent .live-text", TEXTS)
    assert texts[1].endswith("to: two")
    page.close()


def test_it_shows_errors_in_a_banner(stack: Stack, browser: Any) -> None:
    lane = stack.cli_ok("new", "--name", "bannered", "--no-send")
    page = live_page(stack, browser, lane)
    assert page.is_hidden("#live-banner")
    page.fill("#live-send textarea", "nothing to steer")
    page.select_option("#live-send select", "steer")
    page.click("#live-send button[type=submit]")
    page.wait_for_selector("#live-banner:not([hidden])")
    assert page.inner_text("#live-banner .live-banner-text").startswith(
        "Send (steer) failed:"
    )
    page.click("#live-banner .live-banner-close")
    assert page.is_hidden("#live-banner")
    page.close()


def test_it_answers_a_held_approval_from_the_page(stack: Stack, browser: Any) -> None:
    lane = stack.cli_ok("new", "--name", "held", "--approvals", "hold", "--no-send")
    page = live_page(stack, browser, lane)
    stack.cli_ok("send", lane["ref"], "needs a command")
    page.wait_for_selector("#live-approvals .live-approval-accept", timeout=20000)
    assert stack.cli_ok("request", "list")["requests"][0]["lane"] == lane["ref"]
    page.click("#live-approvals .live-approval-accept")
    page.wait_for_selector(".live-turn[data-status=completed]", timeout=30000)
    assert page.inner_text("#live-approvals") == ""
    card = page.inner_text(".live-turn .live-approval")
    assert "accept by admin admin:admin" in card
    assert stack.cli_ok("request", "list")["requests"] == []
    page.close()


def test_it_closes_refused_sockets_with_a_reason(stack: Stack) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    assert stack.web_url is not None
    base = stack.web_url.replace("http://", "ws://")
    for path, code, reason in [
        (
            "/ws/events?lane=@nope",
            4401,
            "unauthorized: no valid token or staff session",
        ),
        ("/ws/elsewhere", 4404, "no such websocket path"),
    ]:
        with connect(base + path, open_timeout=10) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)
