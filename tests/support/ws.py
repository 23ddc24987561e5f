"""Reading websocket messages as a client following the usual convention."""

from __future__ import annotations

import json
from typing import Any


def events_of(message: str | bytes) -> list[dict[str, Any]]:
    """The frames of one message, which must be one `{"events": [...]}` document.

    `json.loads` of the whole message is the check: a message carrying
    several documents (e.g. one per line) fails here.
    """
    document = json.loads(message)
    assert isinstance(document, dict) and list(document) == ["events"], document
    frames = document["events"]
    assert isinstance(frames, list) and frames, document
    return frames
