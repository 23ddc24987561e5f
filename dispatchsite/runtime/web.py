"""daphne as `dispatch up` runs it: daphne's own command line, with secrets
redacted from its access log (a `?token=` would otherwise land in web.log)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from daphne import cli
from daphne.access import AccessLogGenerator

SECRET_QUERY = re.compile(
    r"(?i)([?&](?:token|access_token|api_key|key|secret|password)=)[^&\s\"]*"
)
TOKEN_SHAPED = re.compile(r"dsp_[A-Za-z0-9_\-]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` without query secrets or anything shaped like a dispatch token."""
    return TOKEN_SHAPED.sub("dsp_" + REDACTED, SECRET_QUERY.sub(r"\1" + REDACTED, text))


class RedactingAccessLog(AccessLogGenerator):  # type: ignore[misc]
    def write_entry(
        self, host: Any, date: datetime, request: str, *args: Any, **kwargs: Any
    ) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)


def main() -> None:
    # daphne's CLI builds its access log from the name it imported.
    cli.AccessLogGenerator = RedactingAccessLog
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
