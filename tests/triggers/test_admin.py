"""The Trigger changelist: columns, the firings inline, actions via services."""

from __future__ import annotations

import pytest
from django.test import Client

from lanes.models import AuditEntry, Lane
from tests.triggers.conftest import T0, Codex, add, tick
from triggers.models import Trigger

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/triggers/trigger/"


def act(client: Client, action: str, trigger: Trigger) -> None:
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [trigger.pk]}, follow=True
    )
    assert response.status_code == 200


def test_it_lists_triggers_with_kind_lane_next_due_and_failures(
    admin_client: Client, lane: Lane
) -> None:
    add(lane, name="nightly")
    page = admin_client.get(CHANGELIST).content.decode()
    for column in (
        "Kind",
        "Lane",
        "Next due at",
        "Last outcome",
        "Consecutive failures",
    ):
        assert column in page
    assert "nightly" in page and "interval" in page


def test_it_shows_recent_firings_and_never_the_secret(
    admin_client: Client, codex: Codex, lane: Lane
) -> None:
    trigger = add(lane)
    hook = add(lane, name="hook", when="webhook")
    tick(T0)
    page = admin_client.get(f"{CHANGELIST}{trigger.pk}/change/").content.decode()
    assert "recent firings" in page.lower() and "turn turn-1 started" in page
    hook_page = admin_client.get(f"{CHANGELIST}{hook.pk}/change/").content.decode()
    assert hook.secret not in hook_page


def test_it_pauses_resumes_and_fires_through_the_services(
    admin_client: Client, codex: Codex, lane: Lane
) -> None:
    trigger = add(lane, text="from admin")
    act(admin_client, "pause", trigger)
    trigger.refresh_from_db()
    assert not trigger.enabled and trigger.paused_reason == "paused (admin)"
    act(admin_client, "resume", trigger)
    trigger.refresh_from_db()
    assert trigger.enabled
    act(admin_client, "fire", trigger)
    assert codex.texts() == ["from admin"]
    ops = set(
        AuditEntry.objects.filter(trigger_id=trigger.id, surface="admin").values_list(
            "op", flat=True
        )
    )
    assert ops == {"trigger-pause", "trigger-resume", "trigger-fire-now"}
