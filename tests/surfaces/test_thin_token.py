"""The local CLI's token: the only one REST runs as the CLI's.

Its name is reserved, and the surface "cli" also needs the very value kept
in run/cli-token (0600), so neither a token named like it nor the file of
another home makes a caller the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dispatchsite.core.errors import ValidationError
from dispatchsite.surfaces.daemon import is_cli_token, resolve_cli_token
from lanes.tokens import CLI_TOKEN_NAME, api_token_authenticate, api_token_create


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    settings.DISPATCH_RUN_DIR = run
    monkeypatch.setenv("DISPATCH_TOKEN", "dsp_not_used_by_the_cli")
    monkeypatch.setattr("dispatchsite.surfaces.daemon._local_db_ready", lambda: True)
    return run


@pytest.mark.django_db
def test_it_bootstraps_the_cli_token_into_an_owner_only_file(run: Path) -> None:
    raw = resolve_cli_token()
    assert raw and raw == resolve_cli_token()
    path = run / "cli-token"
    assert path.read_text().strip() == raw
    assert path.stat().st_mode & 0o777 == 0o600
    token = api_token_authenticate(raw)
    assert token is not None and token.name == CLI_TOKEN_NAME
    assert is_cli_token(token)
    # Refused (revoked): replaced, and the old value is no longer the CLI.
    renewed = resolve_cli_token(rejected=raw)
    assert renewed and renewed != raw and api_token_authenticate(raw) is None


@pytest.mark.django_db
def test_it_reserves_the_cli_token_name(run: Path) -> None:
    for name in (CLI_TOKEN_NAME, f" {CLI_TOKEN_NAME} "):
        with pytest.raises(ValidationError, match="reserved for the local CLI"):
            api_token_create(name=name)
    with pytest.raises(ValidationError, match="full scope"):
        api_token_create(name=CLI_TOKEN_NAME, cli=True, read_only=True)
    other, _raw = api_token_create(name="ci")
    assert not is_cli_token(other)


@pytest.mark.django_db
def test_it_needs_the_value_in_the_file_too(run: Path) -> None:
    token, raw = api_token_create(name=CLI_TOKEN_NAME, cli=True)
    assert not is_cli_token(token)  # made, but not the one in run/cli-token
    (run / "cli-token").write_text("dsp_someone_elses\n")
    assert not is_cli_token(token)
    (run / "cli-token").write_text(raw + "\n")
    assert is_cli_token(token)
