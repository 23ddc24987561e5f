"""No token reaches the web server's access log, not even one sent by mistake."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dispatchsite.runtime.web import redact
from tests.support.stack import Stack

TOKEN = "dsp_abcd1234" + "s3cr3t-value_0123456789"

pytestmark = pytest.mark.timeout(240)


def test_it_redacts_query_secrets_and_token_shaped_text() -> None:
    line = f"GET /api/v1/lanes?limit=3&token={TOKEN}&api_key=k1 {TOKEN}"
    redacted = redact(line)
    assert TOKEN not in redacted and "k1" not in redacted
    assert redacted == (
        "GET /api/v1/lanes?limit=3&token=[redacted]&api_key=[redacted] dsp_[redacted]"
    )


def test_it_keeps_a_token_in_a_query_string_out_of_the_web_log(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path)
    try:
        stack.start(web=True)
        for path in (f"/api/v1/lanes?token={TOKEN}", f"/healthz?token={TOKEN}"):
            try:
                urllib.request.urlopen(f"{stack.web_url}{path}", timeout=10)
            except urllib.error.HTTPError:
                pass  # REST refuses a query token (401); the log is the point
    finally:
        stack.stop()
    log = (tmp_path / "web.log").read_text(errors="replace")
    assert "/api/v1/lanes?token=[redacted]" in log
    assert "/healthz?token=[redacted]" in log
    assert TOKEN not in log
