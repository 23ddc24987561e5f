from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.scripted_worker import Worker, scripted_worker


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """Ops run in-process against handlers per app-server method."""
    yield from scripted_worker(monkeypatch)
