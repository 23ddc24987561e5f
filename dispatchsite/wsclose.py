"""Websocket close frames that carry their reason text, under daphne.

ASGI's `websocket.close` has a `reason` (spec 2.3), and channels sends it,
but daphne's protocol drops it and closes with the code alone; a client
then sees "4404" with no words. This wraps daphne's reply handler so an
open socket closes with both; everything else is daphne's own path. Close
reasons must fit in 123 bytes of UTF-8 (RFC 6455), so longer ones are cut.
"""

from __future__ import annotations

from typing import Any

REASON_MAX_BYTES = 123


def short_reason(reason: str) -> str:
    data = reason.encode("utf-8")[:REASON_MAX_BYTES]
    return data.decode("utf-8", errors="ignore")


def install() -> None:
    """Patch daphne once per process (the web server imports the ASGI app)."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not serving under daphne
        return
    if getattr(WebSocketProtocol, "_dispatch_close_reason", False):
        return
    original = WebSocketProtocol.handle_reply

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        reason = message.get("reason")
        if (
            message.get("type") == "websocket.close"
            and reason
            and self.state == self.STATE_OPEN
        ):
            self.sendClose(
                code=message.get("code") or 1000, reason=short_reason(reason)
            )
            return
        original(self, message)

    WebSocketProtocol.handle_reply = handle_reply
    WebSocketProtocol._dispatch_close_reason = True
