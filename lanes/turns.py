"""Building thread and turn requests from a lane's chosen settings."""

from __future__ import annotations

from typing import Any

from lanes.models import Lane

SANDBOX_POLICIES = {
    "read-only": {"type": "readOnly"},
    "workspace-write": {"type": "workspaceWrite"},
    "danger-full-access": {"type": "dangerFullAccess"},
}


def text_input(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "text_elements": []}]


def thread_settings_params(
    *, model: str | None, sandbox: str | None, approval_policy: str | None
) -> dict[str, Any]:
    """thread/start and thread/fork settings; only those the user chose."""
    params: dict[str, Any] = {}
    if model:
        params["model"] = model
    if sandbox:
        params["sandbox"] = sandbox
    if approval_policy:
        params["approvalPolicy"] = approval_policy
    return params


def thread_instruction_params(
    *, base: str | None, developer: str | None
) -> dict[str, Any]:
    """thread/start instructions; they stay with the thread for every turn."""
    params: dict[str, Any] = {}
    if base is not None:
        params["baseInstructions"] = base
    if developer is not None:
        params["developerInstructions"] = developer
    return params


def turn_start_params(
    lane: Lane, text: str, *, client_message_id: str | None = None
) -> dict[str, Any]:
    """turn/start params; settings the user never chose are not sent."""
    saved = lane.runtime_settings or {}
    params: dict[str, Any] = {"threadId": lane.thread_id, "input": text_input(text)}
    if lane.cwd:
        params["cwd"] = lane.cwd
    if saved.get("sandbox"):
        params["sandboxPolicy"] = SANDBOX_POLICIES[saved["sandbox"]]
    if saved.get("approval_policy"):
        params["approvalPolicy"] = saved["approval_policy"]
    if saved.get("model"):
        params["model"] = saved["model"]
    if saved.get("effort"):
        params["effort"] = saved["effort"]
    if saved.get("summary"):
        params["summary"] = saved["summary"]
    if saved.get("output_schema") is not None:
        params["outputSchema"] = saved["output_schema"]
    if client_message_id:
        params["clientUserMessageId"] = client_message_id
    return params
