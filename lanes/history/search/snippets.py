"""Match snippets: a window of text around the first query word."""

from __future__ import annotations

import re

SNIPPET_CHARS = 200


def snippet(text: str, words: list[str], *, width: int = SNIPPET_CHARS) -> str:
    """At most `width` chars of `text` around the first query word, matches in [ ]."""
    flat = re.sub(r"\s+", " ", text).strip()
    if not flat:
        return ""
    alternatives = sorted(set(words), key=len, reverse=True)
    pattern = (
        re.compile(
            r"(?<!\w)(" + "|".join(re.escape(w) for w in alternatives) + ")",
            re.IGNORECASE,
        )
        if words
        else None
    )
    first = pattern.search(flat) if pattern else None
    start = max(0, first.start() - width // 3) if first is not None else 0
    # Room for the ellipses and the brackets of the matches shown.
    body = flat[start : start + width - 2]
    if pattern is not None:
        body = pattern.sub(lambda m: f"[{m.group(0)}]", body)
    head = "…" if start > 0 else ""
    cut = len(head) + len(body) > width or start + width - 2 < len(flat)
    if cut:
        body = body[: width - len(head) - 1].rstrip("[") + "…"
    return head + body
