"""`dispatch models`: the model catalog, live from the app-server and cached."""

from __future__ import annotations

from tests.lanes.conftest import Stack, cli


def test_it_reads_the_model_catalog_live_and_from_the_cache(stack: Stack) -> None:
    status, live, err = cli("models", env=stack.env)
    assert status == 0, err
    assert live["source"] == "app-server" and live["catalog_state"] == "ready"
    assert live["configured_default"]["model"] == "mock-model"
    model = live["models"][0]
    assert model["id"] == "mock-model" and model["is_default"] is True
    assert model["supported_reasoning_efforts"] == ["low", "medium"]
    assert model["display_name"] == "Mock Model"
    assert stack.received("model/list")[-1]["params"] == {"includeHidden": True}

    status, cached, err = cli("models", "--no-refresh", env=stack.env)
    assert status == 0, err
    assert cached["source"] == "registry"
    assert cached["models"] == live["models"]
