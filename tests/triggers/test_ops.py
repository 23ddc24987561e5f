"""The trigger verbs as the CLI runs them (in-process): output, bad input, rm."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatchsite.surfaces.cli import main
from lanes.models import Lane
from tests.triggers.conftest import Codex, make_lane
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, Any]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    return (
        status,
        json.loads(out) if out.strip() else None,
        json.loads(lines[-1])["error"] if lines else None,
    )


def add_args(**flags: str) -> list[str]:
    base = {
        "--name": "tick",
        "--lane": "@work",
        "--when": "interval",
        "--seconds": "2",
        "--action": "send",
        "--text": "hi",
    }
    if flags.get("--when", "interval") not in ("interval", "idle_for"):
        del base["--seconds"]
    base.update(flags)
    return ["trigger", "add", *[x for kv in base.items() for x in kv if x != ""]]


def test_it_adds_lists_pauses_resumes_and_removes(
    capsys: pytest.CaptureFixture[str], lane: Lane
) -> None:
    status, out, err = run(capsys, *add_args(), "--idle-only")
    assert status == 0, err
    assert (
        out["name"] == "tick" and out["lane"] == lane.ref and out["when"] == "interval"
    )
    assert out["guards"]["idle_only"] is True and out["secret"] is None
    tid = out["id"]
    assert run(capsys, "trigger", "list")[1]["triggers"][0]["id"] == tid
    assert run(capsys, "trigger", "get", tid)[1]["next_due_at"]
    status, out, _ = run(capsys, "trigger", "pause", tid)
    assert out["enabled"] is False and out["paused_reason"] == "paused (cli)"
    assert out["next_due_at"] is None
    assert run(capsys, "trigger", "resume", "tick")[1]["enabled"] is True
    assert run(capsys, "trigger", "history", tid)[1] == {
        "id": tid,
        "name": "tick",
        "firings": [],
    }
    status, out, err = run(capsys, "trigger", "rm", tid, "--no-interactive")
    assert status == 2 and "--yes" in err["hint"]
    assert Trigger.objects.filter(pk=tid).exists()
    assert run(capsys, "trigger", "rm", tid, "--yes")[1] == {"id": tid, "removed": True}
    status, _out, err = run(capsys, "trigger", "get", tid)
    assert status == 4 and err["code"] == "not_found"


BAD = [
    ({"--when": "sometimes"}, "--when"),
    ({"--action": "shout"}, "--action"),
    ({"--seconds": "0"}, "seconds"),
    ({"--seconds": ""}, "--seconds"),  # interval without seconds
    ({"--when": "cron", "--cron": "61 * * * *"}, "--cron"),
    ({"--when": "cron", "--cron": "* * *"}, "--cron"),
    ({"--when": "cron", "--cron": "* * * * *", "--tz": "Mars/Base"}, "--tz"),
    ({"--lane": "@nobody"}, "--lane"),
    ({"--text": "x" * (16 * 1024 + 1)}, "--text"),
    ({"--until": "yesterday"}, "--until"),
    ({"--until": "2001-01-01T00:00:00Z"}, "--until"),
    ({"--when": "turn_completed", "--on": "@ghost"}, "--on"),
    ({"--when": "webhook", "--seconds": "5"}, "--seconds"),
    ({"--cron": "* * * * *"}, "--cron"),
    ({"--on": "@work"}, "--on"),
]


@pytest.mark.parametrize(("flags", "field"), BAD)
def test_it_refuses_bad_input_naming_the_field_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], lane: Lane, flags: dict[str, str], field: str
) -> None:
    argv = add_args(**flags)
    if flags.get("--seconds") == "":
        argv = [a for a in argv if a != "--seconds"]
    status, out, err = run(capsys, *argv)
    assert status == 2, (out, err)
    assert field in err["message"]
    assert not Trigger.objects.exists()


def test_it_refuses_an_attached_lane_without_write_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Lane.objects.create(
        thread_id="t-att", ref="0att", title="att", source="attached", host="testhost"
    )
    status, _out, err = run(capsys, *add_args(**{"--lane": "@att"}))
    assert status == 2 and "--lane" in err["message"] and "read-only" in err["message"]
    assert not Trigger.objects.exists()


def test_it_fires_once_now_through_the_ledger(
    capsys: pytest.CaptureFixture[str], codex: Codex, lane: Lane
) -> None:
    tid = run(capsys, *add_args(**{"--text": "now {{ trigger }}"}))[1]["id"]
    run(capsys, "trigger", "pause", tid)
    status, out, err = run(capsys, "trigger", "fire", tid)
    assert status == 0, err
    assert out["firing"]["outcome"] == "fired" and out["firing"]["reason"] == "manual"
    assert out["firing"]["text"] == "now tick"
    history = run(capsys, "trigger", "history", tid)[1]["firings"]
    assert [(f["reason"], f["text"]) for f in history] == [("manual", "now tick")]
    assert codex.texts() == ["now tick"]
    log = run(capsys, "daemon", "log")[1]["actions"]
    fired = [a for a in log if a["op"] == "trigger-fire"]
    assert fired and fired[0]["trigger_id"] == tid and fired[0]["outcome"] == "fired"


def test_it_shows_a_webhook_secret_only_on_add_and_rotate(
    capsys: pytest.CaptureFixture[str], lane: Lane
) -> None:
    out = run(capsys, *add_args(**{"--when": "webhook"}))[1]
    assert out["secret"].startswith("whsec_")
    assert "secret" not in run(capsys, "trigger", "get", out["id"])[1]
    rotated = run(capsys, "trigger", "rotate-secret", out["id"])[1]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != out["secret"]


def test_it_sends_into_another_lane_when_on_is_given(
    capsys: pytest.CaptureFixture[str], lane: Lane
) -> None:
    make_lane("build")
    out = run(
        capsys,
        *add_args(**{"--when": "turn_completed", "--on": "@build"}),
        "--turn-status",
        "any",
    )[1]
    assert out["on"] != out["lane"] and out["turn_status"] == "any"


def test_it_counts_triggers_in_daemon_status(
    capsys: pytest.CaptureFixture[str], lane: Lane
) -> None:
    run(capsys, *add_args(**{"--name": "a"}))
    paused = run(capsys, *add_args(**{"--name": "b"}))[1]["id"]
    run(capsys, "trigger", "pause", paused)
    status = run(capsys, "daemon", "status")[1]
    assert (status["triggers"], status["triggers_enabled"]) == (2, 1)


def test_it_answers_bad_rest_input_400_naming_the_field(lane: Lane) -> None:
    from django.test import Client

    from lanes.tokens import api_token_create

    raw = api_token_create(name="tests")[1]
    http = Client(headers={"Authorization": f"Bearer {raw}"})
    body = {
        "name": "t",
        "lane": lane.ref,
        "when": "cron",
        "cron": "not cron",
        "action": "send",
        "text": "x",
    }
    response = http.post("/api/v1/triggers", body, content_type="application/json")
    assert response.status_code == 400
    assert "--cron" in response.json()["error"]["message"]
    body["when"] = "sometimes"
    response = http.post("/api/v1/triggers", body, content_type="application/json")
    assert response.status_code == 400 and "when" in response.json()["error"]["message"]
    assert not Trigger.objects.exists()
    body.update(when="cron", cron="*/5 * * * *")
    created = http.post("/api/v1/triggers", body, content_type="application/json")
    assert created.status_code == 200, created.content
    tid = created.json()["id"]
    assert http.get(f"/api/v1/triggers/{tid}").json()["cron"] == "*/5 * * * *"
    assert http.delete(f"/api/v1/triggers/{tid}").json() == {"id": tid, "removed": True}
