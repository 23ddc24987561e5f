"""`GET /api/v1/lanes?page_size=&after=` pages; `dispatch list` keeps its shape."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from dispatchsite.surfaces.cli import main as cli_main
from lanes.services import lane_register
from lanes.tokens import api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    for i in range(5):
        lane_register(
            thread_id=f"page-thread-{i}",
            title=f"page-{i}",
            source="own",
            cwd=f"/srv/page/{i}",
            host="testhost",
        )
    raw = api_token_create(name="paging")[1]
    return Client(headers={"Authorization": f"Bearer {raw}"})


def refs(body: dict[str, object]) -> list[str]:
    return [row["ref"] for row in body["lanes"]]  # type: ignore[attr-defined,index]


def test_it_pages_the_lanes_in_creation_order(api: Client) -> None:
    everything = api.get("/api/v1/lanes").json()
    assert [row["title"] for row in everything["lanes"]] == [
        f"page-{i}" for i in range(5)
    ]
    pages: list[list[str]] = []
    query = "page_size=2"
    while True:
        body = api.get(f"/api/v1/lanes?{query}").json()
        assert list(body) == ["lanes"]
        pages.append(refs(body))
        if len(body["lanes"]) < 2:
            break
        query = f"page_size=2&after={body['lanes'][-1]['ref']}"
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sum(pages, []) == refs(everything)


def test_it_refuses_a_bad_page(api: Client) -> None:
    zero = api.get("/api/v1/lanes?page_size=0")
    assert zero.status_code == 400
    assert "page_size" in zero.json()["error"]["message"]
    unknown = api.get("/api/v1/lanes?after=nope-no-such-lane")
    assert unknown.status_code == 404


def test_it_keeps_the_list_shape_on_the_cli(
    api: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed) == ["lanes"]
    assert refs(listed) == refs(api.get("/api/v1/lanes").json())
    assert cli_main(["list", "--page-size", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["lanes"]) == 2
