"""`dispatch token create/list` with scopes, and the CLI's audit actor."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from dispatchsite.core.origin import local_user
from dispatchsite.surfaces.cli import main
from lanes.models import ApiToken, Lane
from lanes.services import lane_register

pytestmark = pytest.mark.django_db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, Any]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return (
        status,
        json.loads(out) if out.strip() else None,
        json.loads(err.strip().splitlines()[-1]) if err.strip() else None,
    )


@pytest.fixture
def alpha() -> Lane:
    return lane_register(
        thread_id="thread-alpha", title="alpha", source="own", cwd="/tmp", host="t"
    )


@pytest.fixture
def beta() -> Lane:
    return lane_register(
        thread_id="thread-beta", title="beta", source="own", cwd="/tmp", host="t"
    )


def test_it_creates_a_scoped_token_and_lists_its_scopes(
    capsys: pytest.CaptureFixture[str], alpha: Lane, beta: Lane
) -> None:
    status, created, _ = run(
        capsys,
        "token", "create", "ci", "--read-only",
        "--lane", "@alpha", "--lane", beta.ref, "--lane", alpha.thread_id,
        "--expires", "12h",
    )  # fmt: skip
    assert status == 0
    assert created["token"].startswith("dsp_")
    assert created["read_only"] is True
    assert created["lanes"] == [
        {"id": alpha.thread_id, "ref": alpha.ref, "handle": "@alpha"},
        {"id": beta.thread_id, "ref": beta.ref, "handle": "@beta"},
    ]
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (timezone.now() + timedelta(hours=12))) < timedelta(minutes=1)
    assert created["active"] is True and created["expired"] is False

    status, plain, _ = run(capsys, "token", "create", "all")
    assert status == 0
    assert (plain["read_only"], plain["lanes"], plain["expires_at"]) == (
        False,
        None,
        None,
    )

    status, listed, _ = run(capsys, "token", "list")
    assert status == 0
    rows = {row["name"]: row for row in listed["tokens"]}
    assert set(rows) == {"ci", "all"}
    assert {k: v for k, v in created.items() if k not in {"token", "note"}} == rows[
        "ci"
    ]
    assert created["token"] not in json.dumps(listed)


def test_it_accepts_an_iso_expiry_and_lists_an_expired_token_as_inactive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, created, _ = run(
        capsys, "token", "create", "t", "--expires", "2999-01-01T00:00:00"
    )
    assert status == 0
    assert created["expires_at"] == "2999-01-01T00:00:00+00:00"
    ApiToken.objects.filter(name="t").update(
        expires_at=timezone.now() - timedelta(seconds=1),
        created_at=timezone.now() - timedelta(hours=1),
    )
    _status, listed, _ = run(capsys, "token", "list")
    [row] = listed["tokens"]
    assert row["expired"] is True and row["active"] is False
    # An expired token frees its name, as a revoked one does.
    assert run(capsys, "token", "create", "t")[0] == 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("--lane", "@nope"), "--lane '@nope'"),
        (("--lane", ""), "--lane ''"),
        (("--expires", "2020-01-01T00:00:00Z"), "in the past"),
        (("--expires", "0m"), "not in the future"),
        (("--expires", "soon"), "neither a duration nor an ISO-8601 time"),
        (("--expires", "99999999999999w"), "too far away"),
    ],
)
def test_it_refuses_bad_scopes_with_exit_2(
    capsys: pytest.CaptureFixture[str], alpha: Lane, argv: tuple[str, ...], named: str
) -> None:
    status, out, err = run(capsys, "token", "create", "bad", *argv)
    assert status == 2 and out is None
    assert err["error"]["code"] == "validation"
    assert named in err["error"]["message"]
    assert err["error"]["hint"]
    assert not ApiToken.objects.exists()


def test_it_records_the_os_user_as_the_actor_of_a_cli_write(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lane_register(
        thread_id="thread-att", title="att", source="attached", cwd="/", host="t"
    )
    status, _out, err = run(capsys, "send", "@att", "hello")
    assert status == 7 and err["error"]["code"] == "authority"

    status, log, _ = run(capsys, "daemon", "log")
    assert status == 0
    [row] = log["actions"]
    assert (row["op"], row["surface"], row["actor"]) == ("send", "cli", local_user())
    assert row["actor"]
