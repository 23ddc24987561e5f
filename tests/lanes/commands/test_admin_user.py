"""`dispatch admin create-user`: a console login that never prompts."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User

from dispatchsite.surfaces.cli import main

pytestmark = pytest.mark.django_db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, Any]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return (
        status,
        json.loads(out) if out.strip() else None,
        json.loads(err.strip().splitlines()[-1])["error"] if err.strip() else None,
    )


def test_it_generates_a_password_and_shows_it_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "admin", "create-user", "ops")
    assert status == 0
    assert out["created"] is True and out["superuser"] is True
    user = authenticate(username="ops", password=out["password"])
    assert user is not None and user.is_staff


def test_it_reads_the_password_from_stdin_and_resets_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert run(capsys, "admin", "create-user", "ops", "--password-stdin")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    status, out, _ = run(capsys, "admin", "create-user", "ops", "--password-stdin")
    assert status == 0 and out["created"] is False and "password" not in out
    assert authenticate(username="ops", password="second-password") is not None
    assert User.objects.filter(username="ops").count() == 1


def test_it_reads_the_password_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_PW", "from-the-env")
    status, out, _ = run(
        capsys,
        "admin",
        "create-user",
        "ops",
        "--password-env",
        "OPS_PW",
        "--staff-only",
    )
    assert status == 0 and out["superuser"] is False
    assert authenticate(username="ops", password="from-the-env") is not None


def test_it_refuses_a_short_password_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    status, _, error = run(capsys, "admin", "create-user", "ops", "--password-stdin")
    assert status == 2 and error["code"] == "validation"
    assert "shorter than 8" in error["message"]
    assert not User.objects.filter(username="ops").exists()
