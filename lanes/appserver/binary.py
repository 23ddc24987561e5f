"""Locating the `codex` binary and checking it before an app-server is spawned."""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dispatchsite.core.errors import AppServerError
from lanes.appserver.protocol import is_invalid_config_warning

logger = logging.getLogger(__name__)

INSTALL_FIX = "install it with `npm install -g @openai/codex` or set DISPATCH_CODEX_BIN"
VERSION_TIMEOUT_S = 5.0
PREFLIGHT_TIMEOUT_S = 15.0

# The npm package only ships this node script; the real program lives in a
# per-platform optional dependency (see codex.js: PLATFORM_PACKAGE_BY_TARGET).
_NPM_WRAPPER_TAIL = ("@openai", "codex", "bin", "codex.js")
_TARGET_TRIPLES: dict[tuple[str, str], str] = {
    ("linux", "x86_64"): "x86_64-unknown-linux-musl",
    ("linux", "amd64"): "x86_64-unknown-linux-musl",
    ("linux", "aarch64"): "aarch64-unknown-linux-musl",
    ("linux", "arm64"): "aarch64-unknown-linux-musl",
    ("darwin", "x86_64"): "x86_64-apple-darwin",
    ("darwin", "arm64"): "aarch64-apple-darwin",
}
_PLATFORM_PACKAGES: dict[str, str] = {
    "x86_64-unknown-linux-musl": "codex-linux-x64",
    "aarch64-unknown-linux-musl": "codex-linux-arm64",
    "x86_64-apple-darwin": "codex-darwin-x64",
    "aarch64-apple-darwin": "codex-darwin-arm64",
}
_VERSION_RE = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")


class CodexNotFoundError(AppServerError):
    """No usable `codex` executable where we looked."""


class CodexConfigError(AppServerError):
    """Codex rejected its configuration (it would silently fall back to defaults)."""


def resolve_codex_argv(codex_bin: str) -> list[str]:
    """The argv prefix that runs codex, preferring the native binary.

    Spawning the npm node wrapper costs ~45 MB RSS and ~100 ms per process (on
    Node 20 it cannot execve and stays resident), so we skip it when we can.
    """
    located = _locate(codex_bin)
    native = native_binary_for_wrapper(located)
    return [str(native if native is not None else located)]


def app_server_argv(codex_bin: str) -> list[str]:
    return [*resolve_codex_argv(codex_bin), "app-server"]


def codex_version(argv: list[str]) -> str:
    """`<codex> --version` -> "0.169.0" (the CLI prints "codex-cli 0.169.0")."""
    completed = _run([*argv, "--version"], timeout=VERSION_TIMEOUT_S, env=None)
    output = (completed.stdout + "\n" + completed.stderr).strip()
    match = _VERSION_RE.search(completed.stdout) or _VERSION_RE.search(output)
    if completed.returncode != 0 or match is None:
        raise AppServerError(
            f"`{_display(argv)} --version` failed (exit {completed.returncode}): "
            f"{_first_line(output) or 'no output'}",
            hint=INSTALL_FIX,
        )
    return match.group(0)


def preflight_config(codex_bin: str, env: Mapping[str, str] | None = None) -> None:
    """Fail fast on a config.toml that codex app-server would silently ignore.

    A live app-server only reports a bad config as a `configWarning` and then runs
    with defaults (OpenAI provider, plugin sync to github.com), so we validate it
    with `--print-startup-config` first, which exits 1 with a JSON error.
    """
    argv = resolve_codex_argv(codex_bin)
    if not supports_print_startup_config(tuple(argv)):
        logger.info("%s has no --print-startup-config; skipping preflight", argv[0])
        return
    child_env = dict(os.environ if env is None else env)
    completed = _run(
        [*argv, "app-server", "--print-startup-config"],
        timeout=PREFLIGHT_TIMEOUT_S,
        env=child_env,
    )
    if completed.returncode == 0:
        return
    raise config_error_from_startup_output(
        completed.stdout, completed.stderr, codex_home=_codex_home(child_env)
    )


@functools.lru_cache(maxsize=8)
def supports_print_startup_config(argv: tuple[str, ...]) -> bool:
    try:
        completed = _run([*argv, "app-server", "--help"], timeout=VERSION_TIMEOUT_S)
    except AppServerError:
        return False
    return "--print-startup-config" in completed.stdout


def config_error_from_startup_output(
    stdout: str, stderr: str, *, codex_home: Path
) -> CodexConfigError:
    """Turn `--print-startup-config`'s JSON error into one actionable line."""
    error = _startup_error_payload(stdout)
    data: dict[str, Any] = error.get("data") or {}
    detail = str(data.get("detail") or error.get("message") or "").strip()
    if not detail:
        detail = _first_line(stderr) or "codex rejected its configuration"
    return config_error(detail, file_path=data.get("filePath"), codex_home=codex_home)


def config_error(
    detail: str, *, file_path: str | None, codex_home: Path | None
) -> CodexConfigError:
    """Shared by the preflight and the client's `configWarning` check."""
    config_path = file_path or (
        str(codex_home / "config.toml") if codex_home else "$CODEX_HOME/config.toml"
    )
    if detail.startswith("CODEX_HOME points to"):
        fix = "create that directory or point CODEX_HOME at an existing one"
    else:
        fix = f"fix or remove {config_path}"
    detail = " ".join(detail.split())
    return CodexConfigError(
        f"invalid Codex configuration: {detail} ({fix})",
        hint=fix,
        data={"detail": detail, "config_path": config_path},
    )


def config_warning_error(
    params: dict[str, Any], *, env: Mapping[str, str]
) -> CodexConfigError | None:
    """A live app-server's configWarning, when it means the config was ignored."""
    if not is_invalid_config_warning(params):
        return None
    summary = str(params.get("summary") or "")
    detail = str(params.get("details") or summary)
    path = params.get("path")
    codex_home = env.get("CODEX_HOME")
    return config_error(
        detail,
        file_path=path if isinstance(path, str) else None,
        codex_home=Path(codex_home) if codex_home else None,
    )


def native_binary_for_wrapper(path: Path) -> Path | None:
    """The native codex next to an npm `codex.js`, or None if `path` is not one."""
    real = path.resolve()
    if real.parts[-len(_NPM_WRAPPER_TAIL) :] != _NPM_WRAPPER_TAIL:
        return None
    triple = _TARGET_TRIPLES.get((platform.system().lower(), platform.machine()))
    if triple is None:
        return None
    for candidate in _native_candidates(real.parents[1], triple):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    logger.warning(
        "no native codex for %s under %s; using the node wrapper", triple, real
    )
    return None


def _native_candidates(package_root: Path, triple: str) -> list[Path]:
    # Mirror node's require.resolve() from inside the package: its nested
    # node_modules, then each ancestor's (which covers the usual sibling
    # install and pnpm's .pnpm store), then the package's own vendor/.
    tail = Path("vendor", triple, "bin", "codex")
    platform_package = _PLATFORM_PACKAGES[triple]
    candidates = []
    for directory in (package_root, *package_root.parents):
        if directory.name == "node_modules":
            continue
        candidates.append(
            directory / "node_modules" / "@openai" / platform_package / tail
        )
    candidates.append(package_root / tail)
    return candidates


def _locate(codex_bin: str) -> Path:
    if not codex_bin.strip():
        raise CodexNotFoundError(
            f"no codex binary configured; {INSTALL_FIX}", hint=INSTALL_FIX
        )
    expanded = os.path.expanduser(codex_bin)
    if os.sep in expanded:
        path = Path(expanded).absolute()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        reason = "is not executable" if path.is_file() else "does not exist"
        raise CodexNotFoundError(
            f"codex binary {str(path)!r} {reason}; {INSTALL_FIX}", hint=INSTALL_FIX
        )
    found = shutil.which(expanded)
    if found is None:
        raise CodexNotFoundError(
            f"codex binary {codex_bin!r} is not on PATH; {INSTALL_FIX}",
            hint=INSTALL_FIX,
        )
    return Path(found).absolute()


def _run(
    argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AppServerError(
            f"`{_display(argv)}` timed out after {timeout:g}s"
        ) from exc
    except OSError as exc:  # missing, not executable, wrong format...
        raise CodexNotFoundError(
            f"cannot run {argv[0]!r}: {exc.strerror or exc}; {INSTALL_FIX}",
            hint=INSTALL_FIX,
        ) from exc


def _startup_error_payload(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return parsed["error"]
    return {}


def _codex_home(env: Mapping[str, str]) -> Path:
    configured = env.get("CODEX_HOME")
    return Path(configured) if configured else Path.home() / ".codex"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _display(argv: list[str]) -> str:
    return " ".join(argv)
