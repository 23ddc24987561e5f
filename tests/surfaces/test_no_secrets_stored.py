"""No secret reaches what dispatch stores or answers: not the audit log, the
journal, the database at all, the logs, nor an error body.

A real stack is driven as a careless client would drive it: the right token
in the header, a wrong one, the right one in a query string (REST refuses it;
the websocket accepts it), then every file and answer is searched for the
token, the wrong token and the secret key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SECRET_KEY = "test-secret-key-" + secrets.token_hex(16)


def stored_text(stack: Stack) -> dict[str, bytes]:
    """Every file the stack wrote: the database (and WAL), logs, run state."""
    files: dict[str, bytes] = {}
    for path in sorted(stack.root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[str(path.relative_to(stack.root))] = path.read_bytes()
    return files


def test_it_stores_and_answers_no_token_and_no_secret_key(
    start_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = start_stack(web=True, extra_env={"DISPATCH_SECRET_KEY": SECRET_KEY})
    raw = stack.cli_ok("token", "create", "leak-check")["token"]
    wrong = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    assert stack.web_url
    bodies: list[str] = []
    refused: list[str] = []
    with httpx.Client(base_url=stack.web_url + "/api/v1", timeout=30) as http:
        auth = {"Authorization": f"Bearer {raw}"}
        created = http.post(
            "/lanes",
            json={"name": "leak", "cwd": str(tmp_path), "text": "say hello"},
            headers=auth,
        )
        assert created.status_code == 200, created.text
        lane = created.json()
        for response in (
            created,
            http.get("/lanes", headers=auth),
            http.get("/lanes", headers={"Authorization": f"Bearer {wrong}"}),
            http.get("/lanes", params={"token": raw}),
            http.get("/lanes", params={"token": wrong}),
            http.get("/lanes/@nope", headers=auth),
            http.post(f"/lanes/{lane['ref']}/send", json={}, headers=auth),
            http.post(
                "/ops/send", json={"lane": lane["ref"], "token": raw}, headers=auth
            ),
            http.post(
                "/ops/roster", content=b"{not json " + raw.encode(), headers=auth
            ),
        ):
            bodies.append(response.text)
            if response.status_code >= 400:
                refused.append(response.json()["error"]["code"])
        assert refused == ["unauthorized"] * 3 + ["not_found"] + ["validation"] * 3

        def turn_done() -> bool:
            return stack.lane_row(lane["id"]).get("latest_turn_status") == "completed"

        wait_for(turn_done, timeout=60, what="the first turn to complete")

    from websockets.sync.client import connect

    ws_url = stack.web_url.replace("http://", "ws://")
    with connect(
        f"{ws_url}/ws/lanes/{lane['ref']}/events?token={raw}", proxy=None
    ) as socket:
        bodies.append(str(socket.recv(timeout=10)))
    log = stack.cli_ok("daemon", "log")
    bodies.append(json.dumps(log))
    assert {row["actor"] for row in log["actions"]} >= {"token:leak-check"}
    bodies.append(json.dumps(stack.cli_ok("token", "list")))

    with stack.db() as conn:  # fold the WAL into the file, then read it all
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        audit = conn.execute("SELECT count(*) FROM lanes_auditentry").fetchone()[0]
        journal = conn.execute("SELECT count(*) FROM lanes_laneevent").fetchone()[0]
    assert audit and journal  # the searched tables are not empty
    stack.stop()
    files = stored_text(stack)
    assert any(name.endswith("web.log") for name in files)
    assert any(b"/api/v1/lanes?token=[redacted]" in data for data in files.values())
    # The search does reach the database: the token's public prefix is there.
    assert any(raw[:12].encode() in files[name] for name in files if "sqlite" in name)
    for secret in (raw, wrong, raw[12:], SECRET_KEY):
        needle = secret.encode()
        leaked = [name for name, data in files.items() if needle in data]
        assert leaked == [], f"{secret[:6]}... found in {leaked}"
        assert not [b for b in bodies if secret in b]
