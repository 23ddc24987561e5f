"""POST /api/v1/hooks/<id>: signed, fresh, once per Idempotency-Key, capped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from lanes.models import Lane
from tests.triggers.conftest import Codex, add
from triggers import queue
from triggers.models import Trigger, TriggerFiring
from triggers.services import firing_run
from triggers.webhooks import BODY_CAP_BYTES, signature

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(lane: Lane) -> Trigger:
    return add(
        lane, when="webhook", text="deploy {{ payload.ref }} by {{ payload.who.name }}"
    )


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    calls: list[list[int]] = []
    monkeypatch.setattr(queue, "enqueue_fire", lambda ids: calls.append(list(ids)))
    return calls


Post = Callable[..., Any]


@pytest.fixture
def post(
    client: Client, hook: Trigger, django_capture_on_commit_callbacks: Any
) -> Post:
    def send(
        body: bytes,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        key: str | None = None,
        sign: bool = True,
        trigger_id: str | None = None,
    ) -> Any:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        headers = {"X-Dispatch-Timestamp": ts}
        if sign:
            headers["X-Dispatch-Signature"] = signature(secret or hook.secret, ts, body)
        if key:
            headers["Idempotency-Key"] = key
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/api/v1/hooks/{trigger_id or hook.id}",
                data=body,
                content_type="application/json",
                headers=headers,
            )

    return send


BODY = json.dumps({"ref": "v1.2", "who": {"name": "ci"}}).encode()


def test_it_fires_a_signed_request_once(
    post: Post, hook: Trigger, queued: list[list[int]], codex: Codex
) -> None:
    response = post(BODY, key="delivery-1")
    assert response.status_code == 202, response.content
    firing_id = response.json()["firing_id"]
    assert queued == [[firing_id]]
    firing_run(firing_id=firing_id)
    assert codex.texts() == ["deploy v1.2 by ci"]
    replay = post(BODY, key="delivery-1")
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "conflict"
    assert TriggerFiring.objects.count() == 1 and len(queued) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"sign": False},
        {"secret": "whsec_wrong"},
        {"timestamp": int(time.time()) - 400},
        {"timestamp": int(time.time()) + 400},
    ],
)
def test_it_refuses_bad_signatures_and_stale_timestamps(
    post: Post, queued: list[list[int]], change: dict[str, Any]
) -> None:
    response = post(BODY, **change)
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "unauthorized"
    assert not TriggerFiring.objects.exists() and queued == []


def test_it_refuses_a_body_that_does_not_match_its_signature(
    client: Client, hook: Trigger, queued: list[list[int]]
) -> None:
    ts = str(int(time.time()))
    response = client.post(
        f"/api/v1/hooks/{hook.id}",
        data=b'{"ref": "evil"}',
        content_type="application/json",
        headers={
            "X-Dispatch-Timestamp": ts,
            "X-Dispatch-Signature": signature(hook.secret, ts, BODY),
        },
    )
    assert response.status_code == 401
    assert not TriggerFiring.objects.exists()


def test_it_caps_the_body(post: Post, queued: list[list[int]]) -> None:
    response = post(b"x" * (BODY_CAP_BYTES + 1))
    assert response.status_code == 413
    assert not TriggerFiring.objects.exists()


def test_it_answers_unknown_and_non_webhook_triggers_404(
    post: Post, lane: Lane, queued: list[list[int]]
) -> None:
    assert post(BODY, trigger_id="nope").status_code == 404
    interval = add(lane, name="interval")
    assert post(BODY, trigger_id=interval.id).status_code == 404


def test_it_refuses_a_paused_webhook(
    post: Post, hook: Trigger, queued: list[list[int]]
) -> None:
    Trigger.objects.filter(pk=hook.pk).update(enabled=False, paused_reason="paused")
    assert post(BODY).status_code == 409
    assert not TriggerFiring.objects.exists()


def test_it_fires_without_a_key_each_time(post: Post, queued: list[list[int]]) -> None:
    assert post(BODY).status_code == 202
    assert post(BODY).status_code == 202
    assert TriggerFiring.objects.count() == 2
