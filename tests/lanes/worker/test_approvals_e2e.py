"""A held approval end to end, on the fake and on the real codex app-server.

On the real one the mock Responses server answers `[[shell:touch F]]` with a
shell tool call; under `approvalPolicy: untrusted` codex asks to run it
(item/commandExecution/requestApproval). With `[policy] approvals = "hold"`
the turn waits in `request list` until `request respond ... accept`, then the
command runs and the turn completes. The fake asks on every turn in its
approval mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.support.mock_responses import MockResponsesServer, tool_output_text
from tests.support.stack import Stack, wait_for


def test_it_waits_in_request_list_until_accepted_then_completes(
    start_stack: Callable[..., Stack], mock: MockResponsesServer, tmp_path: Path
) -> None:
    stack = start_stack(extra_env={"FAKE_APPSERVER_MODE": "approval"})
    stack.write_config('[policy]\napprovals = "hold"\n')
    target = tmp_path / "approved.txt"
    lane = stack.cli_ok(
        "new",
        "--name",
        "needs-approval",
        "--cwd",
        str(tmp_path),
        "--approval-policy",
        "untrusted",
        "--sandbox",
        "danger-full-access",
        "--text",
        f"[[shell:touch {target}]]",
    )

    def listed() -> list[dict[str, object]]:
        return list(stack.cli_ok("request", "list", "--lane", lane["ref"])["requests"])

    requests = wait_for(listed, timeout=60, what="the approval in `request list`")
    (request,) = requests
    assert request["method"] == "item/commandExecution/requestApproval"
    assert request["lane"] == lane["ref"] and request["state"] == "pending"
    # Held, not answered: the turn waits and the command has not run.
    time.sleep(1.0)
    assert stack.lane_row(lane["id"])["latest_turn_status"] == "started"
    assert stack.lane_row(lane["id"])["status"] == "waiting_approval"
    assert not target.exists()
    assert [r["id"] for r in listed()] == [request["id"]]

    answered = stack.cli_ok("request", "respond", str(request["id"]), "accept")
    assert answered["request"]["decision"] == "accept"
    stack.wait_lane(
        lane["id"],
        lambda row: row["latest_turn_status"] == "completed",
        timeout=60,
        what="the turn to complete after the approval",
    )
    assert listed() == []
    methods = [m for _, m in stack.events(lane["id"])]
    pending = methods.index("dispatch/approval/pending")
    assert methods.index("dispatch/approval/answered") > pending
    assert methods.index("turn/completed") > pending
    if stack.codex == "real":
        assert target.exists()
        # The model saw the command's result, not a rejection.
        outputs = [
            tool_output_text(item)
            for r in mock.requests("/v1/responses")
            for item in r["body"].get("input") or []
            if item.get("type") == "function_call_output"
        ]
        assert outputs and not any("rejected" in o for o in outputs)
