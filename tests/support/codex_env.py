"""Locate the codex binary and build an isolated CODEX_HOME for the mock model.

The config written here is the one verified against codex 0.169.0: every
outbound feature (plugin sync, apps, analytics, feedback, update checks) is
off, and the only model provider is the loopback mock Responses server.
"""

from __future__ import annotations

import copy
import functools
import glob
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

__all__ = [
    "MOCK_MODEL",
    "bundled_models",
    "codex_binary",
    "codex_env",
    "mock_model_entry",
    "write_codex_home",
]

MOCK_MODEL = "mock-model"
# A bundled entry whose tool_mode is null gives the plain tool set
# (exec_command + freeform apply_patch); "code_mode_only" ones do not.
TEMPLATE_MODEL = "gpt-5.5"
DEFAULT_CACHE = "~/.cache/dispatch-codex"
NATIVE_GLOB = "node_modules/@openai/codex-linux-x64/vendor/*/bin/codex"


def _executable(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def codex_binary() -> str | None:
    """Path of a runnable codex, preferring the native binary over npm's shim.

    The npm ``codex`` script stays resident under Node (extra RSS and start-up
    latency), so the vendored native binary is used when it exists.
    """
    override = os.environ.get("DISPATCH_CODEX_BIN")
    if override and _executable(override):
        return override
    cache = Path(os.environ.get("DISPATCH_CODEX_CACHE") or DEFAULT_CACHE)
    for candidate in sorted(glob.glob(str(cache.expanduser() / NATIVE_GLOB))):
        if _executable(candidate):
            return candidate
    return shutil.which("codex")


@functools.lru_cache(maxsize=4)
def _bundled_models_json(codex: str) -> str:
    # `debug models` touches CODEX_HOME (arg0 helper dirs), so give it a
    # throwaway one instead of the developer's ~/.codex.
    with tempfile.TemporaryDirectory(prefix="codex-models-") as home:
        env = {**os.environ, "CODEX_HOME": home, "RUST_LOG": "error"}
        proc = subprocess.run(
            [codex, "debug", "models", "--bundled"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{codex} debug models --bundled` exited {proc.returncode}: "
            f"{proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def bundled_models(codex: str | None = None) -> list[dict[str, Any]]:
    """The bundled model catalog (cached per process and binary)."""
    codex = codex or codex_binary()
    if codex is None:
        raise RuntimeError("codex binary not found; cannot dump bundled models")
    data = json.loads(_bundled_models_json(codex))
    # 0.169.0 prints {"models": [...]}; accept a bare list too.
    models = data.get("models") if isinstance(data, dict) else data
    if not isinstance(models, list) or not models:
        raise RuntimeError(f"unexpected `debug models --bundled` output: {data!r:.200}")
    return models


def mock_model_entry(codex: str | None = None) -> dict[str, Any]:
    """A catalog entry for ``mock-model`` cloned from a real bundled entry.

    Hand-written entries fail on many required fields, so a real one is
    copied and only the parts that would leak into requests or UI are reset.
    """
    models = bundled_models(codex)
    by_slug = {m.get("slug"): m for m in models}
    template = by_slug.get(TEMPLATE_MODEL) or next(
        (m for m in models if m.get("tool_mode") is None), None
    )
    if template is None:
        raise RuntimeError("no bundled model with tool_mode null to copy")
    entry = copy.deepcopy(template)
    entry.update(
        slug=MOCK_MODEL,
        display_name=MOCK_MODEL,
        description="Loopback mock of the Responses API for tests.",
        upgrade=None,
        model_messages=None,
        availability_nux=None,
        base_instructions="You are a mock coding agent used in automated tests.",
        additional_speed_tiers=[],
        service_tiers=[],
    )
    return entry


def _toml_str(value: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(value)


def _split_extra(extra_toml: str) -> tuple[str, str]:
    """Split extra TOML into top-level keys and the tables that follow.

    Top-level keys must precede the first table header, otherwise TOML would
    file them under ``[model_providers.mock]``.
    """
    lines = extra_toml.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("["):
            return "\n".join(lines[:i]).strip(), "\n".join(lines[i:]).strip()
    return extra_toml.strip(), ""


def write_codex_home(
    codex_home: Path,
    *,
    base_url: str,
    catalog: bool = True,
    extra_toml: str = "",
) -> None:
    """Write ``config.toml`` (and ``models.json``) pointing codex at the mock.

    ``base_url`` is the mock's ``http://127.0.0.1:PORT/v1``. ``extra_toml``
    may hold top-level keys and/or extra tables (e.g. ``[mcp_servers.x]``);
    it must not repeat a table written here.
    """
    codex_home = Path(codex_home)
    codex_home.mkdir(parents=True, exist_ok=True)
    extra_keys, extra_tables = _split_extra(extra_toml)

    top = [
        f"model = {_toml_str(MOCK_MODEL)}",
        'model_provider = "mock"',
    ]
    if catalog:
        catalog_path = codex_home / "models.json"
        catalog_path.write_text(json.dumps({"models": [mock_model_entry()]}, indent=1))
        top.append(f"model_catalog_json = {_toml_str(str(catalog_path))}")
    top += [
        'approval_policy = "never"',
        'sandbox_mode = "read-only"',
        "check_for_update_on_startup = false",
    ]
    if extra_keys:
        top.append(extra_keys)

    tables = f"""
[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
apps = false
remote_plugin = false
unbounded_connection_retries = false

[model_providers.mock]
name = "Mock Responses"
base_url = {_toml_str(base_url)}
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 30000
"""
    text = "\n".join(top) + "\n" + tables
    if extra_tables:
        text += "\n" + extra_tables + "\n"
    # Codex silently falls back to defaults (real OpenAI, plugin sync over
    # the network) on an invalid config, so refuse to write one.
    tomllib.loads(text)
    (codex_home / "config.toml").write_text(text)


def codex_env(codex_home: Path) -> dict[str, str]:
    """Environment for an ``codex app-server`` process using ``codex_home``."""
    env = dict(os.environ)
    env.update(
        CODEX_HOME=str(codex_home),
        MOCK_API_KEY="dummy-key",
        RUST_LOG="warn",
    )
    return env
