"""Finding codex, skipping its npm node wrapper, and the config preflight."""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path

import pytest

from dispatchsite.core.errors import AppServerError
from lanes.appserver.binary import (
    CodexConfigError,
    CodexNotFoundError,
    app_server_argv,
    codex_version,
    preflight_config,
    resolve_codex_argv,
)
from tests.support.codex_env import codex_env, write_codex_home

TRIPLE = "x86_64-unknown-linux-musl"
REAL_CACHE = Path("~/.cache/dispatch-codex/node_modules").expanduser()
REAL_WRAPPER = REAL_CACHE / ".bin" / "codex"
REAL_NATIVE = (
    REAL_CACHE / "@openai" / "codex-linux-x64" / "vendor" / TRIPLE / "bin" / "codex"
)
REAL_CODEX_PRESENT = REAL_WRAPPER.exists() and REAL_NATIVE.exists()


def write_executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


def npm_layout(node_modules: Path, *, native: bool = True) -> tuple[Path, Path]:
    """node_modules/.bin/codex -> @openai/codex/bin/codex.js, plus the native."""
    wrapper = write_executable(
        node_modules / "@openai" / "codex" / "bin" / "codex.js",
        "#!/usr/bin/env node\n",
    )
    link = node_modules / ".bin" / "codex"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / "@openai" / "codex" / "bin" / "codex.js")
    native_path = node_modules / "@openai" / "codex-linux-x64" / "vendor" / TRIPLE
    native_path = native_path / "bin" / "codex"
    if native:
        write_executable(native_path)
    assert wrapper.exists()
    return link, native_path


@pytest.fixture
def on_linux_x64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")


def test_it_resolves_the_npm_wrapper_symlink_to_the_native_binary(
    tmp_path: Path, on_linux_x64: None
) -> None:
    link, native = npm_layout(tmp_path / "node_modules")

    assert resolve_codex_argv(str(link)) == [str(native)]


def test_it_resolves_the_wrapper_found_on_path(
    tmp_path: Path, on_linux_x64: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, native = npm_layout(tmp_path / "node_modules")
    monkeypatch.setenv("PATH", f"{link.parent}{os.pathsep}/usr/bin:/bin")

    assert resolve_codex_argv("codex") == [str(native)]
    assert app_server_argv("codex") == [str(native), "app-server"]


def test_it_finds_a_platform_package_nested_under_the_wrapper_package(
    tmp_path: Path, on_linux_x64: None
) -> None:
    link, _ = npm_layout(tmp_path / "node_modules", native=False)
    nested = write_executable(
        tmp_path
        / "node_modules/@openai/codex/node_modules/@openai/codex-linux-x64"
        / f"vendor/{TRIPLE}/bin/codex"
    )

    assert resolve_codex_argv(str(link)) == [str(nested)]


def test_it_keeps_the_wrapper_when_no_native_binary_is_installed(
    tmp_path: Path, on_linux_x64: None
) -> None:
    link, _ = npm_layout(tmp_path / "node_modules", native=False)

    assert resolve_codex_argv(str(link)) == [str(link)]


def test_it_returns_a_plain_executable_unchanged(tmp_path: Path) -> None:
    codex = write_executable(tmp_path / "bin" / "codex")

    assert resolve_codex_argv(str(codex)) == [str(codex)]


@pytest.mark.skipif(not REAL_CODEX_PRESENT, reason="no npm codex in the cache")
def test_it_resolves_the_real_npm_install_to_its_native_binary() -> None:
    argv = resolve_codex_argv(str(REAL_WRAPPER))

    assert argv == [str(REAL_NATIVE)]
    assert codex_version(argv) == "0.169.0"
    assert codex_version([str(REAL_WRAPPER)]) == "0.169.0"


def test_it_explains_how_to_install_codex_when_it_is_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(CodexNotFoundError) as caught:
        resolve_codex_argv("codex")

    assert "not on PATH" in caught.value.message
    assert "npm install -g @openai/codex" in caught.value.message
    assert "DISPATCH_CODEX_BIN" in caught.value.message
    assert caught.value.exit_status == 8


def test_it_explains_a_missing_or_unusable_path(tmp_path: Path) -> None:
    not_executable = tmp_path / "codex"
    not_executable.write_text("#!/bin/sh\n")

    with pytest.raises(CodexNotFoundError, match="does not exist.*DISPATCH_CODEX_BIN"):
        resolve_codex_argv(str(tmp_path / "missing" / "codex"))
    with pytest.raises(CodexNotFoundError, match="is not executable"):
        resolve_codex_argv(str(not_executable))
    with pytest.raises(CodexNotFoundError, match="no codex binary configured"):
        resolve_codex_argv("")


def test_it_parses_the_version(tmp_path: Path) -> None:
    codex = write_executable(
        tmp_path / "codex", "#!/bin/sh\necho 'codex-cli 0.169.0'\n"
    )
    broken = write_executable(tmp_path / "broken", "#!/bin/sh\necho boom >&2\nexit 3\n")

    assert codex_version([str(codex)]) == "0.169.0"
    with pytest.raises(AppServerError, match="exit 3"):
        codex_version([str(broken)])


def test_it_turns_a_startup_config_error_into_one_actionable_line(
    tmp_path: Path,
) -> None:
    config = tmp_path / "home" / "config.toml"
    detail = f"{config}:1:9: invalid type: integer `42`, expected a string"
    error = {
        "error": {
            "code": -32600,
            "data": {
                "reason": "configLoad",
                "filePath": str(config),
                "detail": detail,
            },
            "message": "failed to load configuration: ...",
        }
    }
    codex = write_executable(
        tmp_path / "codex",
        "#!/bin/sh\n"
        'if [ "$2" = "--help" ]; then echo "  --print-startup-config"; exit 0; fi\n'
        f"echo '{json.dumps(error)}'\n"
        "echo 'Error: startup configuration unavailable' >&2\nexit 1\n",
    )

    with pytest.raises(CodexConfigError) as caught:
        preflight_config(str(codex), {"CODEX_HOME": str(config.parent)})

    assert caught.value.message == (
        f"invalid Codex configuration: {detail} (fix or remove {config})"
    )
    assert caught.value.hint == f"fix or remove {config}"


def test_it_skips_the_preflight_when_codex_lacks_the_flag(tmp_path: Path) -> None:
    codex = write_executable(
        tmp_path / "codex",
        "#!/bin/sh\n"
        'if [ "$2" = "--help" ]; then echo "  --listen"; exit 0; fi\n'
        "exit 1\n",
    )

    preflight_config(str(codex), {})


@pytest.mark.e2e
@pytest.mark.skipif(not REAL_CODEX_PRESENT, reason="no npm codex in the cache")
def test_it_preflights_the_real_codex(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "codex-home"
    write_codex_home(home, base_url=f"http://127.0.0.1:{port}/v1", catalog=False)

    preflight_config(str(REAL_WRAPPER), codex_env(home))

    with pytest.raises(CodexConfigError, match="CODEX_HOME points to"):
        preflight_config(str(REAL_WRAPPER), codex_env(tmp_path / "missing"))
