"""The dashboard at `/`: staff only, one row per lane with what an operator needs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from lanes.models import Lane, LaneEvent, QueuedMessage
from lanes.services import lane_register

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha() -> Lane:
    return lane_register(
        thread_id="thread-alpha", title="alpha", source="own", cwd="/a", host="h1"
    )


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("staff", is_staff=True))
    return client


def test_it_sends_anonymous_visitors_to_the_admin_login() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/")


def test_it_refuses_users_without_staff() -> None:
    client = Client()
    client.force_login(User.objects.create_user("plain"))
    assert client.get("/").status_code == 302
    assert client.get("/dashboard/lanes.json").status_code == 302


def test_it_lists_every_lane_with_turn_queue_and_links(
    alpha: Lane, staff: Client
) -> None:
    for seq, turn in enumerate(["t1", "t2"], start=1):
        LaneEvent.objects.create(
            thread_id=alpha.thread_id, seq=seq, method="turn/started", turn_id=turn
        )
    Lane.objects.filter(pk=alpha.pk).update(
        status="busy", latest_turn_id="t2", active_turn_id="t2"
    )
    QueuedMessage.objects.create(lane=alpha, text="later")
    QueuedMessage.objects.create(lane=alpha, text="done", status="sent")
    lane_register(
        thread_id="thread-beta", title="beta", source="attached", cwd="/b", host="h2"
    )
    page = staff.get("/")
    assert page.status_code == 200
    assert 'id="dash-lanes"' in page.content.decode()
    rows = {
        row["title"]: row for row in staff.get("/dashboard/lanes.json").json()["lanes"]
    }
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"]["status"] == "busy"
    assert rows["alpha"]["turn_number"] == 2 and rows["alpha"]["active"] is True
    assert rows["alpha"]["queue"] == 1
    assert rows["alpha"]["live_url"] == f"/lanes/{alpha.ref}/live"
    assert rows["alpha"]["admin_url"] == f"/admin/lanes/lane/{alpha.pk}/change/"
    assert rows["beta"]["turn_number"] == 0 and rows["beta"]["host"] == "h2"
    assert page.context["hosts"] == ["h1", "h2"]


def test_it_brands_the_admin_as_dispatch_and_views_the_dashboard(
    admin_client: Client,
) -> None:
    html = admin_client.get("/admin/").content.decode()
    assert "Django administration" not in html
    assert "<title>Console | dispatch</title>" in html
    assert 'href="/"' in html  # "View site"
    assert "Audit entries" in html and "Audit entrys" not in html
