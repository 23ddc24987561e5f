"""`dispatch doctor`: checks of the local installation, worst status wins.

Each check returns {name, status ok|warn|fail, summary, detail, recovery,
data}. The only side effects are creating DISPATCH_HOME's directories and,
unless skipped, one throwaway app-server that is initialized and closed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import DispatchError
from dispatchsite.runtime import home

OK, WARN, FAIL = "ok", "warn", "fail"
SEVERITY = {OK: 0, WARN: 1, FAIL: 2}
PLUGIN_ASSETS = (
    ".codex-plugin/plugin.json",
    ".mcp.json",
    "skills/dispatch/SKILL.md",
    "skills/dm/SKILL.md",
)
AUTH_FILES = ("auth.json", "credentials.json")
# The codex versions dispatch is tested on: the pinned one (.ci/run's
# CODEX_VERSION, the oldest supported) to the newest whose end-to-end tests
# passed. CI also runs them on the newest published release.
CODEX_OLDEST_SUPPORTED = "0.169.0"
CODEX_NEWEST_TESTED = "0.171.0"
CODEX_RANGE = f"{CODEX_OLDEST_SUPPORTED} to {CODEX_NEWEST_TESTED}"
LOOSE_SHOWN = 10


def check(
    name: str,
    status: str,
    summary: str,
    *,
    detail: str = "",
    recovery: str = "",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "summary": summary,
        "detail": detail or None,
        "recovery": recovery or None,
        "data": data or {},
    }


def run_doctor(*, app_server: bool, timeout: float = 10) -> dict[str, Any]:
    codex = _codex_checks()
    checks = [
        *codex.checks,
        _guard("dispatch_home", _check_dispatch_home),
        _guard("dispatch_config", _check_dispatch_config),
        _guard("registry", _registry),
        _guard("redis", _check_redis),
        _guard("daemon", _check_daemon),
        _guard("journal", _check_journal),
        _guard("plugin_assets", _check_plugin_assets),
        _check_app_server(codex.argv, enabled=app_server, timeout=timeout),
    ]
    worst = max((c["status"] for c in checks), key=SEVERITY.__getitem__)
    return {"status": worst, "version": dispatch_version(), "checks": checks}


def dispatch_version() -> str:
    try:
        return metadata.version("dispatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def _guard(name: str, probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    # A check that crashes is reported, not allowed to hide the others.
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001
        return check(name, FAIL, f"check crashed: {exc}", detail=repr(exc))


# -- codex --------------------------------------------------------------------


class _CodexResult:
    def __init__(self, checks: list[dict[str, Any]], argv: list[str] | None) -> None:
        self.checks = checks
        self.argv = argv


def version_key(version: str) -> tuple[int, ...]:
    """ "0.169.0" -> (0, 169, 0); a pre-release tag sorts with its release."""
    return tuple(
        int(part) for part in version.split("-")[0].split(".") if part.isdigit()
    )


def codex_version_check(version: str, path: str, *, configured: str) -> dict[str, Any]:
    data = {
        "path": path,
        "version": version,
        "configured": configured,
        "supported": CODEX_RANGE,
    }
    if version_key(version) < version_key(CODEX_OLDEST_SUPPORTED):
        return check(
            "codex_binary",
            WARN,
            f"codex {version} at {path} is older than the supported {CODEX_RANGE}",
            detail="older app-servers lack methods and fields dispatch sends",
            recovery=(
                f"npm install -g @openai/codex@{CODEX_NEWEST_TESTED}, or point "
                "DISPATCH_CODEX_BIN at a supported codex"
            ),
            data=data,
        )
    summary = f"codex {version} at {path}"
    if version_key(version) > version_key(CODEX_NEWEST_TESTED):
        summary += f" (newer than the tested {CODEX_RANGE})"
    return check("codex_binary", OK, summary, data=data)


def _codex_checks() -> _CodexResult:
    from lanes.appserver.binary import (
        codex_version,
        preflight_config,
        resolve_codex_argv,
    )

    codex_bin = settings.DISPATCH_CODEX_BIN
    argv: list[str] | None = None
    try:
        argv = resolve_codex_argv(codex_bin)
        version = codex_version(argv)
        binary = codex_version_check(version, argv[0], configured=codex_bin)
    except DispatchError as exc:
        binary = check(
            "codex_binary",
            FAIL,
            exc.message,
            recovery=exc.hint,
            data={"configured": codex_bin},
        )

    codex_home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
    config = codex_home / "config.toml"
    home_data = {
        "codex_home": str(codex_home),
        "exists": codex_home.is_dir(),
        "config_toml": config.is_file(),
    }
    if argv is None:
        config_check = check(
            "codex_home",
            WARN,
            f"{codex_home}: config not checked (no codex binary)",
            data=home_data,
        )
    else:
        try:
            preflight_config(codex_bin, dict(os.environ))
            config_check = check(
                "codex_home",
                OK,
                f"{codex_home}: "
                + ("config.toml valid" if home_data["config_toml"] else "defaults"),
                data=home_data,
            )
        except DispatchError as exc:
            config_check = check(
                "codex_home", FAIL, exc.message, recovery=exc.hint, data=home_data
            )

    # Presence only: credentials are never opened.
    present = [name for name in AUTH_FILES if (codex_home / name).is_file()]
    if present:
        auth = check(
            "codex_auth",
            OK,
            f"{', '.join(present)} present in {codex_home}",
            data={"files": present},
        )
    else:
        auth = check(
            "codex_auth",
            WARN,
            f"no {' or '.join(AUTH_FILES)} in {codex_home}",
            detail="fine for a custom model provider with an API key in the env",
            recovery="run `codex login` to use OpenAI models",
            data={"files": []},
        )
    return _CodexResult([binary, config_check, auth], argv)


def _check_app_server(
    argv: list[str] | None, *, enabled: bool, timeout: float
) -> dict[str, Any]:
    if not enabled:
        return check(
            "app_server",
            WARN,
            "skipped (--no-app-server)",
            recovery="run `dispatch doctor` without --no-app-server",
        )
    if argv is None:
        return check(
            "app_server",
            WARN,
            "skipped: no codex binary",
            recovery="fix codex_binary first",
        )
    return _guard("app_server", lambda: asyncio.run(_app_server_smoke(timeout)))


async def _app_server_smoke(timeout: float) -> dict[str, Any]:
    from lanes.appserver.binary import app_server_argv
    from lanes.appserver.client import AppServerClient

    argv = app_server_argv(settings.DISPATCH_CODEX_BIN)
    client = AppServerClient(argv, env=dict(os.environ))
    try:
        await client.start(timeout=timeout)
        return check(
            "app_server",
            OK,
            f"initialize answered by codex {client.version or '?'}",
            data={
                "argv": argv,
                "pid": client.pid,
                "version": client.version,
                "user_agent": client.user_agent,
            },
        )
    except DispatchError as exc:
        return check(
            "app_server",
            FAIL,
            exc.message.splitlines()[0],
            detail=client.stderr_excerpt() or exc.message,
            recovery=exc.hint or "see the detail; `codex app-server` must start",
            data={"argv": argv},
        )
    finally:
        await client.close()


# -- dispatch -----------------------------------------------------------------


def _check_dispatch_home() -> dict[str, Any]:
    data = {"dispatch_home": str(home.home_dir())}
    try:
        home.ensure_home()
    except DispatchError as exc:
        return check("dispatch_home", FAIL, exc.message, recovery=exc.hint, data=data)
    # The database holds session keys, token hashes and transcripts.
    loose = home.home_loose_paths()
    if loose:
        shown = [str(path) for path in loose[:LOOSE_SHOWN]]
        more = len(loose) - len(shown)
        return check(
            "dispatch_home",
            WARN,
            f"{len(loose)} paths in {home.home_dir()} are open to other users",
            detail=", ".join(shown) + (f" and {more} more" if more else ""),
            recovery=(
                "run `dispatch up`, which makes the home owner-only, or "
                f"`chmod -R go-rwx {home.home_dir()}`"
            ),
            data={**data, "loose": shown},
        )
    return check(
        "dispatch_home", OK, f"{home.home_dir()} is writable and owner-only", data=data
    )


def _check_dispatch_config() -> dict[str, Any]:
    from dispatchsite.core.config import config_path, load_policy

    path = config_path()
    try:
        policy = load_policy()
    except DispatchError as exc:
        return check(
            "dispatch_config",
            FAIL,
            exc.message,
            recovery=exc.hint,
            data={"path": str(path)},
        )
    return check(
        "dispatch_config",
        OK,
        f"{path}: " + ("valid" if path.exists() else "absent, defaults apply"),
        data={"path": str(path), "policy": vars(policy)},
    )


def _registry() -> dict[str, Any]:
    from django.db import DatabaseError

    from dispatchsite.runtime.migrate import database_label, schema_state, sqlite_path

    db = sqlite_path()
    label = database_label()
    fix = "run `dispatch registry migrate` (or `dispatch up`, which migrates)"
    if db is not None and not db.exists():
        return check(
            "registry",
            WARN,
            f"no database yet at {db}",
            recovery=fix,
            data={"db": label},
        )
    try:
        state = schema_state()
    except DatabaseError as exc:
        return check(
            "registry",
            FAIL,
            f"cannot read {label}: {exc}",
            recovery="check the file and its permissions, or restore a backup",
            data={"db": label},
        )
    data = {
        "db": label,
        "schema_version": state.version,
        "pending": state.pending,
        "unknown": state.unknown,
    }
    if state.unknown:
        return check(
            "registry",
            FAIL,
            f"{label} was migrated by a newer dispatch ({len(state.unknown)} "
            "unknown migrations)",
            recovery="upgrade dispatch",
            data=data,
        )
    if state.pending:
        return check(
            "registry",
            WARN,
            f"{len(state.pending)} migrations pending in {label}",
            recovery=fix,
            data=data,
        )
    return check(
        "registry", OK, f"schema current ({state.version} migrations)", data=data
    )


def _check_redis() -> dict[str, Any]:
    from dispatchsite.runtime.redis import find_redis_server, redis_reachable

    url = settings.REDIS_URL
    if not settings.DISPATCH_REDIS_PRIVATE:
        if redis_reachable(url, timeout=2.0):
            return check("redis", OK, f"{url} answers PING", data={"url": url})
        return check(
            "redis",
            FAIL,
            f"{url} (DISPATCH_REDIS_URL) is unreachable",
            recovery="start that Redis, or unset DISPATCH_REDIS_URL",
            data={"url": url},
        )
    try:
        binary = str(find_redis_server())
    except DispatchError as exc:
        return check("redis", FAIL, exc.message, recovery=exc.hint, data={"url": url})
    data = {"url": url, "private": True, "binary": binary}
    if redis_reachable(url, timeout=1.0):
        return check("redis", OK, f"private Redis answers on {url}", data=data)
    return check(
        "redis",
        WARN,
        "private Redis not running",
        detail=f"`dispatch up` starts {binary} on {url}",
        recovery="run `dispatch up`",
        data=data,
    )


def _check_daemon() -> dict[str, Any]:
    from dispatchsite.runtime.status import stack_status

    status = stack_status()
    data = {
        key: status[key]
        for key in ("pid", "url", "pidfile", "components", "app_server")
    }
    if status["running"]:
        down = [
            name
            for name, info in status["components"].items()
            if info.get("status") != "up"
        ]
        if down:
            return check(
                "daemon",
                WARN,
                f"supervisor {status['pid']} running; not up: {', '.join(down)}",
                recovery="see the component logs in " + status["log_dir"],
                data=data,
            )
        return check(
            "daemon", OK, f"running (pid {status['pid']}) at {status['url']}", data=data
        )
    stale = [status["pidfile"]] if status["stale_pidfile"] else []
    socket_path = home.redis_socket_path()
    if settings.DISPATCH_REDIS_PRIVATE and socket_path.exists():
        stale.append(str(socket_path))
    if stale:
        return check(
            "daemon",
            WARN,
            f"stale {' and '.join(stale)} (no supervisor running)",
            recovery="run `dispatch down` to clean up, then `dispatch up`",
            data={**data, "stale": stale},
        )
    return check("daemon", WARN, "not running", recovery="run `dispatch up`", data=data)


def _check_journal() -> dict[str, Any]:
    from dispatchsite.runtime.status import stack_status

    journal = stack_status()["journal"]
    if journal is None:
        return check("journal", OK, "no worker running to report on it")
    failing = journal.get("failing")
    if failing:
        return check(
            "journal",
            FAIL,
            f"the worker cannot write the journal since {failing['since']}: "
            f"{failing['error']}; {failing['held']} events held in memory "
            f"(up to {journal['hold_limit']}), {failing['lost']} lost",
            detail="the app-server and its turns keep running; held events "
            "are written, and a dispatch/journal/gap event records the outage, "
            "once writes succeed",
            recovery=f"free disk space or make {settings.DATABASES['default']['NAME']}"
            " and its directory writable; the worker resumes by itself",
            data=journal,
        )
    last = journal.get("last_outage")
    if last and last.get("lost"):
        return check(
            "journal",
            WARN,
            f"{last['lost']} events were lost while journal writes failed "
            f"({last['since']} to {last['ended_at']}: {last['error']})",
            detail="each affected lane has a dispatch/journal/gap event",
            data=journal,
        )
    return check("journal", OK, "the worker is writing the journal", data=journal)


def _check_plugin_assets() -> dict[str, Any]:
    root = Path(settings.BASE_DIR) / "plugins" / "dispatch"
    missing, invalid = [], []
    for relative in PLUGIN_ASSETS:
        path = root / relative
        if not path.is_file():
            missing.append(relative)
            continue
        if path.suffix == ".json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                invalid.append(f"{relative}: {exc}")
    data = {"root": str(root), "missing": missing, "invalid": invalid}
    if invalid:
        return check(
            "plugin_assets",
            FAIL,
            f"invalid JSON in {root}: {'; '.join(invalid)}",
            recovery="reinstall dispatch, or fix the file",
            data=data,
        )
    if missing:
        return check(
            "plugin_assets",
            WARN,
            f"{len(missing)} of {len(PLUGIN_ASSETS)} plugin files missing under {root}",
            detail=", ".join(missing),
            recovery="reinstall dispatch to get the Codex plugin bundle",
            data=data,
        )
    return check("plugin_assets", OK, f"plugin bundle present at {root}", data=data)
