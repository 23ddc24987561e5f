"""The packet admin: editing makes a new version; a packet launches a lane."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from lanes.models import Lane
from tests.workspaces.conftest import Codex
from workspaces.models import Packet

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    user = User.objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def form(**slots: str) -> dict[str, str]:
    return {
        "name": "review",
        **{
            s: ""
            for s in ("goal", "prompt", "output_schema", "base", "developer", "config")
        },
        **slots,
    }


def test_it_saves_each_admin_edit_as_a_new_version(client: Client) -> None:
    add = reverse("admin:workspaces_packet_add")
    response = client.post(add, form(prompt="first", output_schema="[]"))
    assert response.status_code == 200
    assert b"must be a JSON object" in response.content
    assert Packet.objects.count() == 0

    response = client.post(add, form(prompt="first"))
    assert response.status_code == 302
    v1 = Packet.objects.get()
    change = reverse("admin:workspaces_packet_change", args=[v1.pk])
    page = client.get(change).content.decode()
    assert "first" in page and "launch a lane from this packet" in page
    response = client.post(change, form(prompt="second", goal="a goal"))
    assert response.status_code == 302
    v1.refresh_from_db()
    assert [f.text for f in v1.files.all()] == ["first"]  # the old version stays
    v2 = Packet.objects.get(name="review", version=2)
    assert sorted(f.path for f in v2.files.all()) == ["goal.md", "prompt.md"]


def test_it_launches_a_lane_from_a_packet(
    client: Client, codex: Codex, home: Path, tmp_path: Path
) -> None:
    client.post(reverse("admin:workspaces_packet_add"), form(prompt="hello"))
    packet = Packet.objects.get()
    changelist = reverse("admin:workspaces_packet_changelist")
    response = client.post(
        changelist, {"action": "launch_lane", "_selected_action": [packet.pk]}
    )
    launch = reverse("admin:workspaces_packet_launch", args=[packet.pk])
    assert response.status_code == 302 and response["Location"] == launch
    response = client.post(
        launch, {"name": "from-admin", "cwd": str(tmp_path), "send": "on"}
    )
    lane = Lane.objects.get(title="from-admin")
    assert response.status_code == 302
    assert codex.params("turn/start")[0]["input"][0]["text"] == "hello"
    page = client.get(reverse("admin:lanes_lane_change", args=[lane.pk]))
    text = page.content.decode()
    assert "prompt.md" in text and "review v1" in text
