"""The model catalog: `model/list` (all pages) + `config/read`, cached in the DB.

The cache lets `models --no-refresh` answer without a running worker, and
keeps a record of when each model was first and last seen.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from dispatchsite.core.errors import AppServerError
from lanes.models import ModelCatalogEntry
from lanes.worker import gateway

MAX_PAGES = 20
EMPTY_HINT = (
    "no models are cached yet; start the daemon (`dispatch up`) and run "
    "`dispatch models` to read the live catalog"
)
DEFAULT_PROVIDER = "openai"


def config_read(*, host: str) -> dict[str, Any]:
    result = gateway.rpc(host, "config/read", {"includeLayers": False})
    config = result.get("config") if isinstance(result, dict) else None
    return config if isinstance(config, dict) else {}


def configured_default(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": config.get("model"),
        "model_provider": config.get("model_provider"),
        "service_tier": config.get("service_tier"),
        "model_reasoning_effort": config.get("model_reasoning_effort"),
    }


def model_list_all(*, host: str) -> list[dict[str, Any]]:
    # Hidden models are cached too, so --include-hidden never needs a refresh.
    models: list[dict[str, Any]] = []
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        params: dict[str, Any] = {"includeHidden": True}
        if cursor:
            params["cursor"] = cursor
        page = gateway.rpc(host, "model/list", params)
        models.extend(m for m in page.get("data") or [] if isinstance(m, dict))
        cursor = page.get("nextCursor")
        if not cursor:
            break
    return models


def model_catalog_store(*, provider: str, models: list[dict[str, Any]]) -> None:
    """Replace the provider's cached catalog with what Codex listed just now."""
    now = timezone.now()
    seen = []
    with transaction.atomic():
        for model in models:
            model_id = str(model.get("id") or model.get("model") or "")
            if not model_id:
                continue
            seen.append(model_id)
            entry, created = ModelCatalogEntry.objects.get_or_create(
                provider=provider,
                model_id=model_id,
                defaults={"data": model, "first_seen_at": now, "last_seen_at": now},
            )
            if not created:
                entry.data = model
                entry.last_seen_at = now
                entry.save(update_fields=["data", "last_seen_at"])
        # A model Codex stopped listing is gone: a stale row would be offered
        # as a valid choice.
        ModelCatalogEntry.objects.filter(provider=provider).exclude(
            model_id__in=seen
        ).delete()


def fast_alias(model: dict[str, Any]) -> str | None:
    for tier in model.get("serviceTiers") or []:
        if isinstance(tier, dict) and str(tier.get("name", "")).lower() == "fast":
            return tier.get("id")
    for tier in model.get("additionalSpeedTiers") or []:
        if str(tier).lower() in {"fast", "priority"}:
            return str(tier)
    return None


def catalog_row(entry: ModelCatalogEntry) -> dict[str, Any]:
    data = entry.data or {}
    efforts = [
        e.get("reasoningEffort") if isinstance(e, dict) else e
        for e in data.get("supportedReasoningEfforts") or []
    ]
    aliases = {}
    fast = fast_alias(data)
    if fast:
        aliases["fast"] = fast
    return {
        "id": entry.model_id,
        "provider": entry.provider,
        "display_name": data.get("displayName"),
        "description": data.get("description"),
        "is_default": bool(data.get("isDefault")),
        "hidden": bool(data.get("hidden")),
        "default_reasoning_effort": data.get("defaultReasoningEffort"),
        "supported_reasoning_efforts": [e for e in efforts if e],
        "default_service_tier": data.get("defaultServiceTier"),
        "service_tiers": [
            {
                "id": t.get("id"),
                "name": t.get("name"),
                "description": t.get("description"),
            }
            for t in data.get("serviceTiers") or []
            if isinstance(t, dict)
        ],
        "input_modalities": list(data.get("inputModalities") or []),
        "supports_personality": bool(data.get("supportsPersonality")),
        "upgrade": data.get("upgrade"),
        "aliases": aliases,
        "last_seen_at": entry.last_seen_at.isoformat(),
    }


def model_catalog(*, host: str, refresh: bool, include_hidden: bool) -> dict[str, Any]:
    """ModelCatalogOutput; refresh reads Codex live, otherwise the cache."""
    hint: str | None = None
    if refresh:
        config = config_read(host=host)
        provider = str(config.get("model_provider") or DEFAULT_PROVIDER)
        model_catalog_store(provider=provider, models=model_list_all(host=host))
        source = "app-server"
    else:
        source = "registry"
        try:
            config = config_read(host=host)
        except AppServerError as exc:
            # The cache is still worth showing when the daemon is down.
            config = {}
            hint = f"configured defaults unavailable ({exc.message})"
    entries = ModelCatalogEntry.objects.order_by("provider", "model_id")
    rows = [catalog_row(e) for e in entries]
    if not include_hidden:
        rows = [r for r in rows if not r["hidden"]]
    rows.sort(key=lambda r: (not r["is_default"], r["provider"], r["id"]))
    last_seen = max((e.last_seen_at for e in entries), default=None)
    if not rows:
        hint = EMPTY_HINT if not refresh else "Codex listed no models"
    return {
        "refreshed_at": last_seen.isoformat() if last_seen else None,
        "source": source,
        "catalog_state": "ready" if rows else "empty",
        "hint": hint,
        "configured_default": configured_default(config),
        "models": rows,
    }
