"""The admin live page: staff only, CSRF-protected sends, and in Chromium.

The browser tests run a stack with daphne and the fake app-server in its
approval mode (every turn asks to run a command, which policy declines),
log in as a superuser, send from the page's box and watch the assistant's
text stream into the DOM. Rendering of the item kinds the fake never emits
(file changes, diffs, command output, a pending approval) is checked by
feeding frames through a stand-in WebSocket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from lanes.models import Lane
from lanes.services import lane_register
from lanes.views import live_url
from tests.support.browser import chromium, logged_in_page
from tests.support.browser import web_stack as shared_web_stack
from tests.support.stack import Stack

PASSWORD = "live-page-pw"


# -- views (in-process) ------------------------------------------------------------


@pytest.fixture
def alpha(db: None) -> Lane:
    return lane_register(
        thread_id="thread-alpha",
        title="alpha",
        source="own",
        cwd="/srv/alpha",
        host="testhost",
    )


@pytest.fixture
def staff(db: None) -> Client:
    user = User.objects.create_user("staff", password=PASSWORD, is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_it_links_a_lane_to_its_live_page(alpha: Lane) -> None:
    assert live_url(alpha) == f"/lanes/{alpha.ref}/live"


def test_it_sends_anonymous_visitors_to_the_login(alpha: Lane) -> None:
    response = Client().get(live_url(alpha))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_refuses_users_without_staff(alpha: Lane) -> None:
    client = Client()
    client.force_login(User.objects.create_user("plain", password=PASSWORD))
    assert client.get(live_url(alpha)).status_code == 302
    assert client.post(f"{live_url(alpha)}/send", {"text": "hi"}).status_code == 302


def test_it_renders_the_page_for_staff(alpha: Lane, staff: Client) -> None:
    response = staff.get(f"/lanes/@{alpha.title}/live")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="live-transcript"' in html and "lanes/live.js" in html
    config = response.context["config"]
    assert config["wsPath"] == f"/ws/lanes/{alpha.ref}/events"
    assert config["sendUrl"] == f"/lanes/{alpha.ref}/live/send"


def test_it_answers_404_for_an_unknown_lane(staff: Client) -> None:
    assert staff.get("/lanes/@nope/live").status_code == 404


def test_it_requires_the_csrf_token_to_send(alpha: Lane, staff: Client) -> None:
    response = staff.post(f"{live_url(alpha)}/send", {"text": "hi"})
    assert response.status_code == 403


def test_it_sends_through_the_send_op(
    alpha: Lane, staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_send(*args: Any) -> dict[str, Any]:
        calls.append(args)
        return {"op": "queue", "detail": "queued message 1; pending=1"}

    monkeypatch.setattr("lanes.views.run_send", fake_send)
    staff.get(live_url(alpha))  # sets the CSRF cookie
    token = staff.cookies["csrftoken"].value
    response = staff.post(
        f"{live_url(alpha)}/send",
        {"text": "later", "mode": "queue"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "ok": True,
        "result": {"op": "queue", "detail": "queued message 1; pending=1"},
    }
    assert calls == [(alpha.ref, "later", "queue", "admin:staff")]


def test_it_returns_op_errors_as_json(
    alpha: Lane, staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dispatchsite.core.errors import LaneBusyError

    def busy(*args: Any) -> dict[str, Any]:
        raise LaneBusyError("lane is busy", hint="steer or queue")

    monkeypatch.setattr("lanes.views.run_send", busy)
    staff.get(live_url(alpha))
    response = staff.post(
        f"{live_url(alpha)}/send",
        {"text": "now"},
        headers={"X-CSRFToken": staff.cookies["csrftoken"].value},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "lane_busy"


# -- in Chromium, against a running stack ------------------------------------------


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with shared_web_stack(
        tmp_path_factory.mktemp("live"), FAKE_APPSERVER_MODE="approval"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(web_stack: Stack) -> Iterator[Any]:
    with chromium() as launched:
        yield launched


AGENT_TEXTS = "[...document.querySelectorAll('.live-item-agent .live-text')]"


def test_it_streams_the_reply_to_a_message_sent_from_the_page(
    web_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    lane = web_stack.cli_ok("new", "--name", "live", "--text", "first message")
    web_stack.wait_lane(lane["id"], lambda r: r["latest_turn_status"] == "completed")
    page = logged_in_page(browser, web_stack, f"/lanes/{lane['ref']}/live")
    page.wait_for_selector("#live-conn[data-state=live]")
    page.wait_for_function(
        f"{AGENT_TEXTS}.some(e => e.textContent.includes('to: first message'))"
    )
    page.fill("#live-send textarea", "[[slow:0.2]] hello from the page")
    page.click("#live-send button")
    # Part of the reply is on the page while the turn still runs ...
    page.wait_for_function(
        "document.querySelectorAll('.live-turn[data-status=inProgress]').length === 1"
        f" && {AGENT_TEXTS}.some(e => e.textContent.startsWith('fake reply #2'))",
        timeout=15000,
    )
    partial = page.eval_on_selector_all(
        ".live-item-agent .live-text", "els => els[els.length - 1].textContent"
    )
    page.screenshot(path=str(tmp_path / "live-streaming.png"))
    # ... and all of it once the turn completes.
    reply = "fake reply #2 to: [[slow:0.2]] hello from the page"
    page.wait_for_function(
        f"{AGENT_TEXTS}.some(e => e.textContent === {json.dumps(reply)})", timeout=20000
    )
    page.wait_for_selector(".live-turn:nth-of-type(2)[data-status=completed]")
    assert reply.startswith(partial) and len(partial) < len(reply)
    assert "started" in page.inner_text("#live-send-result")
    assert page.input_value("#live-send textarea") == ""
    users = page.eval_on_selector_all(
        ".live-item-user .live-text", "els => els.map(e => e.textContent)"
    )
    assert users == ["first message", "[[slow:0.2]] hello from the page"]
    # Each turn asked to run `echo fake`; policy declined it.
    commands = page.eval_on_selector_all(
        ".live-item-command", "els => els.map(e => e.textContent)"
    )
    assert len(commands) == 2 and all("declined" in c for c in commands)
    approvals = page.eval_on_selector_all(
        ".live-turn .live-approval", "els => els.map(e => e.dataset.state)"
    )
    assert approvals == ["resolved", "resolved"]
    assert page.inner_text("#live-approvals") == ""
    assert page.inner_text("#live-status") == "idle"
    page.screenshot(path=str(tmp_path / "live-done.png"), full_page=True)
    print(f"screenshots in {tmp_path}")
    page.close()


FAKE_SOCKET = """
window.WebSocket = class {
  constructor(url) {
    window.__socketUrl = url;
    setTimeout(() => {
      this.onopen && this.onopen();
      // The server's shape: one {"events": [...]} document per message.
      const frames = window.__frames;
      this.onmessage({data: JSON.stringify({events: frames.slice(0, 2)})});
      for (const f of frames.slice(2)) {
        this.onmessage({data: JSON.stringify({events: [f]})});
      }
    }, 50);
  }
  close() {}
};
"""


def frames_of_every_kind(thread_id: str) -> list[dict[str, Any]]:
    turn = {"threadId": thread_id, "turnId": "turn-files"}
    rows: list[tuple[str, dict[str, Any], Any]] = [
        ("turn/started", {"threadId": thread_id, "turn": {"id": "turn-files"}}, None),
        (
            "item/started",
            {
                **turn,
                "item": {
                    "type": "commandExecution",
                    "id": "cmd-1",
                    "command": "ls -1",
                    "cwd": "/srv",
                    "status": "inProgress",
                    "exitCode": None,
                    "aggregatedOutput": None,
                },
            },
            None,
        ),
        (
            "item/commandExecution/outputDelta",
            {**turn, "itemId": "cmd-1", "delta": "README.md\n"},
            None,
        ),
        (
            "item/completed",
            {
                **turn,
                "item": {
                    "type": "commandExecution",
                    "id": "cmd-1",
                    "command": "ls -1",
                    "status": "completed",
                    "exitCode": 0,
                    "aggregatedOutput": "README.md\nsrc\n",
                },
            },
            None,
        ),
        (
            "item/completed",
            {
                **turn,
                "item": {
                    "type": "fileChange",
                    "id": "patch-1",
                    "status": "completed",
                    "changes": [
                        {
                            "path": "src/app.py",
                            "kind": {"type": "update"},
                            "diff": "@@ -1 +1 @@\n-old = 1\n+new = 2\n",
                        }
                    ],
                },
            },
            None,
        ),
        (
            "turn/diff/updated",
            {
                **turn,
                "diff": "diff --git a/src/app.py b/src/app.py\n"
                "@@ -1 +1 @@\n-old = 1\n+new = 2\n",
            },
            None,
        ),
        (
            "thread/status/changed",
            {
                "threadId": thread_id,
                "status": {"type": "active", "activeFlags": ["waitingOnApproval"]},
            },
            None,
        ),
        (
            "item/fileChange/requestApproval",
            {**turn, "itemId": "patch-2", "reason": "write outside the workspace"},
            7,
        ),
        (
            "error",
            {**turn, "error": {"message": "<b>not html</b>"}, "willRetry": False},
            None,
        ),
    ]
    return [
        {
            "seq": n,
            "method": method,
            "params": params,
            "request_id": request_id,
            "turn_id": "turn-files",
            "item_id": None,
            "received_at": "2026-01-01T00:00:00+00:00",
        }
        for n, (method, params, request_id) in enumerate(rows, start=1)
    ]


def test_it_renders_commands_file_changes_diffs_and_approvals(
    web_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    lane = web_stack.cli_ok("new", "--name", "kinds", "--no-send")
    path = f"/lanes/{lane['ref']}/live"
    page = logged_in_page(browser, web_stack, path)
    page.add_init_script(
        f"window.__frames = {json.dumps(frames_of_every_kind(lane['id']))};"
        + FAKE_SOCKET
    )
    page.goto(f"{web_stack.web_url}{path}")
    page.wait_for_selector(".live-error")
    assert page.evaluate("window.__socketUrl").endswith(
        f"/ws/lanes/{lane['ref']}/events?after=0"
    )
    assert page.inner_text(".live-item-command .live-command") == "$ ls -1"
    assert page.inner_text(".live-output") == "README.md\nsrc\n"
    assert "completed (exit 0)" in page.inner_text(".live-item:first-child .live-badge")
    assert page.inner_text(".live-file summary") == "update src/app.py"
    assert page.eval_on_selector_all(
        ".live-diff-add", "els => els.map(e => e.textContent)"
    ) == ["+new = 2\n", "+new = 2\n"]
    assert page.inner_text("#live-approvals").count("write outside the workspace") == 1
    assert page.inner_text("#live-status") == "waiting_approval"
    # Output is text, never markup.
    assert page.inner_text(".live-error") == "<b>not html</b>"
    page.screenshot(path=str(tmp_path / "live-kinds.png"), full_page=True)
    page.close()


@pytest.mark.parametrize(
    ("path", "post", "op_id", "params"),
    [
        ("stop", {}, "stop", {"lane": None}),
        (
            "respond",
            {"id": "12", "decision": "accept"},
            "request-respond",
            {"id": 12, "decision": "accept"},
        ),
    ],
)
def test_it_stops_and_answers_approvals_through_their_ops(
    alpha: Lane,
    staff: Client,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    post: dict[str, str],
    op_id: str,
    params: dict[str, Any],
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_op(*args: Any) -> dict[str, Any]:
        calls.append(args)
        return {"detail": "done"}

    monkeypatch.setattr("lanes.views.run_op", fake_op)
    staff.get(live_url(alpha))
    response = staff.post(
        f"{live_url(alpha)}/{path}",
        post,
        headers={"X-CSRFToken": staff.cookies["csrftoken"].value},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "result": {"detail": "done"}}
    expected = {k: v if v is not None else alpha.ref for k, v in params.items()}
    assert calls == [(op_id, expected, "admin:staff")]
