"""A write the thin client sent is never run again in process.

Once the daemon may have run it (no answer, or an answer without an error
body), running it in process could apply it twice: the client reports an
error instead. A read, or a write the daemon refused unrun, falls back.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from dispatchsite.thin import client

SNAPSHOT = {"hash": "h"}
ARGS = argparse.Namespace()


class Daemon:
    token = "dsp_x"

    def __init__(self, answer: tuple[int, bytes] | Exception) -> None:
        self.answer = answer

    def request(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer[0], {}, self.answer[1]


def call(intent: str, answer: tuple[int, bytes] | Exception) -> Any:
    op = {"id": "send", "cli": "send", "intent": intent}
    daemon: Any = Daemon(answer)
    return client.call(daemon, SNAPSHOT, op, {"lane": "a"}, ARGS)


@pytest.mark.parametrize(
    "answer",
    [ConnectionResetError("reset"), (500, b"<html>oops</html>"), (503, b"")],
)
def test_it_reports_a_write_that_may_have_run(
    answer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert call("write", answer) == 1
    error = json.loads(capsys.readouterr().err)["error"]
    assert "may or may not have been applied" in error["message"]
    # A read is safe to run again.
    assert isinstance(call("read", answer), client.Declined)


@pytest.mark.parametrize(
    "answer",
    [
        client.NotSent("refused"),
        (401, b""),
        (
            412,
            json.dumps(
                {"error": {"code": "stale_snapshot", "exit_status": 2}}
            ).encode(),
        ),
    ],
)
def test_it_runs_in_process_what_the_daemon_did_not_run(answer: Any) -> None:
    assert isinstance(call("write", answer), client.Declined)
