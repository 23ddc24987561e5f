"""The `models` op: the model catalog the app-server offers, cached."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, Field

from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import OpInput, OpOutput, define_op
from lanes.catalog import model_catalog
from lanes.ops.schemas import DAEMON_READ


class ModelsIn(OpInput):
    refresh: bool = Field(
        True, description="read the live catalog (--no-refresh: the cached one)"
    )
    include_hidden: bool = Field(False, description="include hidden models")


class CatalogModel(BaseModel):
    id: str
    provider: str
    display_name: str | None
    description: str | None
    is_default: bool
    hidden: bool
    default_reasoning_effort: str | None
    supported_reasoning_efforts: list[str]
    default_service_tier: str | None
    service_tiers: list[dict[str, Any]]
    input_modalities: list[str]
    supports_personality: bool
    upgrade: str | None
    aliases: dict[str, str]
    last_seen_at: str


class ModelCatalogOut(OpOutput):
    refreshed_at: str | None
    source: Literal["app-server", "registry"]
    catalog_state: Literal["ready", "empty"]
    hint: str | None
    configured_default: dict[str, Any]
    models: list[CatalogModel]


@define_op(
    id="models",
    summary="the model catalog (model/list + config/read), cached",
    intent="read",
    idempotent=True,
    input=ModelsIn,
    output=ModelCatalogOut,
    cli="models",
    http=("GET", "/models"),
    mcp_tool=DAEMON_READ,
    mcp_action="models",
)
def models(data: ModelsIn, origin: Origin) -> dict[str, Any]:
    return model_catalog(
        host=settings.DISPATCH_HOST,
        refresh=data.refresh,
        include_hidden=data.include_hidden,
    )
