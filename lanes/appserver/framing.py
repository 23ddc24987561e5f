"""JSON-RPC as `codex app-server` frames it on stdio: one JSON object a line.

Codex leaves out the "jsonrpc" member, so a message is told apart by the
members it carries rather than by a version tag.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from lanes.appserver.errors import JSONRPC_INTERNAL_ERROR, RpcError

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
MessageKind = Literal["request", "notification", "response", "unknown"]

# asyncio's default 64 KiB line limit is far below a turn/completed carrying a
# big diff or a thread/read with full history.
STDOUT_LINE_LIMIT = 64 * 1024 * 1024


def request_message(request_id: int, method: str, params: JsonDict | None) -> JsonDict:
    # 0.169 rejects a request without params ("missing field `params`"),
    # even for methods that take none.
    return {"id": request_id, "method": method, "params": params or {}}


def notification_message(method: str, params: JsonDict | None) -> JsonDict:
    message: JsonDict = {"method": method}
    if params is not None:
        message["params"] = params
    return message


def error_reply(request_id: Any, code: int, message: str) -> JsonDict:
    return {"id": request_id, "error": {"code": code, "message": message}}


def encode_line(message: JsonDict) -> bytes:
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n"
    return line.encode("utf-8")


def decode_line(line: bytes) -> JsonDict | None:
    """The message on one stdout line; None (logged) for anything else."""
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError:
        logger.warning("app-server sent a non-JSON line: %.200r", line)
        return None
    if not isinstance(message, dict):
        logger.warning("app-server sent a non-object message: %.200r", line)
        return None
    return message


def message_kind(message: JsonDict) -> MessageKind:
    method = message.get("method")
    if isinstance(method, str):
        return "request" if "id" in message else "notification"
    if "id" in message and ("result" in message or "error" in message):
        return "response"
    return "unknown"


def response_error(error: Any) -> RpcError:
    """The `error` member of a response as the exception its caller gets."""
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return RpcError(
        int(error.get("code", JSONRPC_INTERNAL_ERROR)),
        str(error.get("message", "unknown error")),
        error.get("data"),
    )
