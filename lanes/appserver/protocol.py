"""What the Codex app-server's messages mean: one place for the protocol's words.

A library module: no Django, no models. Method names, status objects and
error texts of `codex app-server` are read here and nowhere else. Codex
answers nearly every failure with JSON-RPC code -32600, so an error is told
apart by its message text; the predicates below are the only substring
matches on it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

# -- methods dispatch calls --------------------------------------------------

THREAD_RESUME = "thread/resume"
THREAD_NAME_SET = "thread/name/set"
THREAD_ROLLBACK = "thread/rollback"
THREAD_TURNS_LIST = "thread/turns/list"
THREAD_ITEMS_LIST = "thread/items/list"
TURN_START = "turn/start"
TURN_INTERRUPT = "turn/interrupt"

# -- notifications -------------------------------------------------------------

TURN_STARTED = "turn/started"
TURN_COMPLETED = "turn/completed"
ITEM_STARTED = "item/started"
ITEM_COMPLETED = "item/completed"
# A server request codex stopped waiting for (answered, or its turn ended).
SERVER_REQUEST_RESOLVED = "serverRequest/resolved"

# -- requests the app-server sends us --------------------------------------------

# Answered with {"decision": "accept" | "decline"}.
ITEM_APPROVAL_METHODS = frozenset(
    {
        "item/commandExecution/requestApproval",
        "item/fileChange/requestApproval",
    }
)
# The older names, answered with {"decision": "approved" | "denied"}.
LEGACY_APPROVAL_METHODS = frozenset({"execCommandApproval", "applyPatchApproval"})
REQUEST_USER_INPUT = "item/tool/requestUserInput"
MCP_ELICITATION = "mcpServer/elicitation/request"
# Every request that leaves a turn waiting on a person's answer: the lane
# shows waiting_approval, and the live page offers the answer.
APPROVAL_METHODS = frozenset(
    {
        *ITEM_APPROVAL_METHODS,
        *LEGACY_APPROVAL_METHODS,
        "item/permissions/requestApproval",
        REQUEST_USER_INPUT,
        MCP_ELICITATION,
    }
)

# -- error texts -----------------------------------------------------------------

# What codex says when it has no thread (loaded or on disk) for an id.
THREAD_MISSING_MARKERS = ("thread not found", "no rollout", "thread not loaded")
# What codex says when the request names something malformed or outside an
# enum: serde's messages, and the id parsers' ("invalid session id: ...").
INVALID_REQUEST_MARKERS = (
    "invalid request:",
    "invalid thread id:",
    "invalid session id:",
    "invalid turn id:",
)
JSONRPC_INVALID_PARAMS = -32602
# A configWarning whose summary says codex now runs on its defaults.
INVALID_CONFIG_MARKERS = ("invalid configuration", "using defaults")


def is_not_found_error(message: str) -> bool:
    """Something the request named does not exist (a thread, a turn, a rollout)."""
    text = message.lower()
    return "not found" in text or "no rollout" in text


def is_thread_missing_error(message: str) -> bool:
    """This app-server has no such thread, loaded or on disk."""
    text = message.lower()
    return any(marker in text for marker in THREAD_MISSING_MARKERS)


def is_invalid_request_error(message: str, *, rpc_code: int | None = None) -> bool:
    """The request itself was wrong (a malformed id, a value outside an enum):
    codex's serde errors ("Invalid request: ...", "invalid thread id: ...")
    and JSON-RPC invalid params. An unknown method is not one of them."""
    if rpc_code == JSONRPC_INVALID_PARAMS:
        return True
    text = message.lower()
    return any(marker in text for marker in INVALID_REQUEST_MARKERS)


def is_unsteerable_turn_error(message: str) -> bool:
    """The running turn (a compaction or a review) takes no new input."""
    return "cannot steer a" in message.lower()


def is_unknown_method_error(message: str, method: str | None = None) -> bool:
    # codex answers an unknown method with "unknown variant `<method>`" (and
    # a value outside an enum the same way, so pass `method` to tell them
    # apart).
    if method is not None:
        return f"unknown variant `{method}`" in message
    return "unknown variant" in message


def is_no_active_turn_error(message: str) -> bool:
    """A turn/steer or turn/interrupt came after the turn had ended."""
    return "no active turn" in message


ACTIVE_TURN_MISMATCH = re.compile(
    r"expected active turn id '[^']*' but found '([^']+)'"
)


def found_active_turn(message: str) -> str | None:
    """The turn codex says is running, when we named another one."""
    match = ACTIVE_TURN_MISMATCH.search(message)
    return match.group(1) if match else None


def is_active_turn_error(message: str) -> bool:
    """The thread is running a turn (note: "no active turn" matches as well)."""
    return "active turn" in message


def is_invalid_config_warning(params: dict[str, Any]) -> bool:
    """A configWarning that means codex ignored its config.toml."""
    summary = str(params.get("summary") or "").lower()
    return any(marker in summary for marker in INVALID_CONFIG_MARKERS)


# -- objects ---------------------------------------------------------------------


def is_thread_id(text: str) -> bool:
    """A Codex thread id: a UUID (codex also takes the 32-hex and urn forms)."""
    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True


def thread_status(thread: dict[str, Any]) -> str:
    """A Codex ThreadStatus object as one of dispatch's status words."""
    status = thread.get("status")
    kind = status.get("type") if isinstance(status, dict) else status
    if kind == "active":
        flags = (status.get("activeFlags") if isinstance(status, dict) else None) or []
        return "waiting_approval" if "waitingOnApproval" in flags else "busy"
    return {
        "idle": "idle",
        "notLoaded": "not_loaded",
        "systemError": "error",
    }.get(str(kind), "unknown")


def thread_source(thread: dict[str, Any]) -> str:
    source = thread.get("source")
    if isinstance(source, dict) and source:
        # {"custom": "x"} or {"subAgent": {...}}
        key, value = next(iter(source.items()))
        return f"{key}:{value}" if isinstance(value, str) else str(key)
    return str(source or "unknown")
