"""`dispatch registry migrate`: Django migrations behind a SQLite backup.

Schema versions are counts of applied Django migrations (all apps), which
only grow as dispatch is upgraded; the names applied by this run are listed
in `applied`.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from dispatchsite.core.errors import AppServerError

RUNNING_FIX = (
    "stop the daemon first (`dispatch down`), then migrate; or pass "
    "--allow-running to migrate under it"
)


class DaemonRunningError(AppServerError):
    """`registry migrate` refused because the daemon is up.

    Exit 8 as in the tool users come from ("registry migrate blocked -> exit
    8"), but under its own code: nothing is wrong with the app-server.
    """

    code = "daemon_running"
    http_status = 409


@dataclass(frozen=True)
class SchemaState:
    applied: list[str]
    pending: list[str]
    # Applied in the database but unknown to this code: a newer dispatch
    # migrated it, and this one must not write to it.
    unknown: list[str]

    @property
    def version(self) -> int:
        return len(self.applied)


def schema_state() -> SchemaState:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    loader = executor.loader
    applied = {key for key in loader.applied_migrations}
    plan = executor.migration_plan(loader.graph.leaf_nodes())
    return SchemaState(
        applied=sorted(f"{app}.{name}" for app, name in applied),
        pending=[f"{m.app_label}.{m.name}" for m, backwards in plan if not backwards],
        unknown=sorted(
            f"{app}.{name}" for app, name in applied - set(loader.graph.nodes)
        ),
    )


def sqlite_path() -> Path | None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return None
    return Path(database["NAME"])


def database_label() -> str:
    database = settings.DATABASES["default"]
    path = sqlite_path()
    if path is not None:
        return str(path)
    return f"{database['ENGINE'].rsplit('.', 1)[-1]}:{database.get('NAME')}"


def backup_sqlite(db: Path) -> Path:
    """Snapshot `db` (WAL included) to `<db>.bak-YYYYmmdd-HHMMSS`, mode 0600.

    The stamp is UTC. An existing file of that name is never overwritten.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = db.with_name(f"{db.name}.bak-{stamp}")
    # O_EXCL both refuses an existing backup and creates it private before
    # any row is copied into it.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    # The backup API reads through SQLite, so committed WAL pages are copied
    # too, which a plain file copy would miss.
    source = sqlite3.connect(db, timeout=20)
    try:
        destination = sqlite3.connect(target)
        try:
            source.backup(destination)
        finally:
            destination.close()
    except BaseException:
        os.unlink(target)
        raise
    finally:
        source.close()
    os.chmod(target, 0o600)
    return target


def registry_migrate(*, backup: bool, allow_running: bool) -> dict[str, Any]:
    """Apply pending migrations; raise AppServerError (exit 8) if blocked/failed."""
    from django.core.management import call_command

    from dispatchsite.runtime import home
    from dispatchsite.runtime.status import running_supervisor_pid

    running = running_supervisor_pid() is not None
    result: dict[str, Any] = {
        "status": "ok",
        "migrated": False,
        "db": database_label(),
        "from_schema_version": None,
        "to_schema_version": None,
        "applied": [],
        "backup": None,
        "daemon_running": running,
        "recovery": None,
    }
    if running and not allow_running:
        result.update(status="blocked", reason="daemon_running", recovery=RUNNING_FIX)
        raise DaemonRunningError(
            "the dispatch daemon is running, and migrating under it could "
            f"change tables it is using: {RUNNING_FIX}",
            hint=RUNNING_FIX,
            data=result,
        )
    db = sqlite_path()
    if db is not None and db.parent == home.home_dir():
        home.ensure_home()
    # Decided before schema_state(), whose connection creates the file.
    has_data = db is not None and db.exists() and db.stat().st_size > 0
    before = schema_state()
    result["from_schema_version"] = before.version
    if before.unknown:
        fix = "upgrade dispatch; this version cannot migrate that database"
        result.update(status="failed", reason="newer_schema", recovery=fix)
        raise AppServerError(
            f"{result['db']} has migrations this dispatch does not know "
            f"({', '.join(before.unknown[:3])}); {fix}",
            hint=fix,
            data=result,
        )
    if backup and db is not None and has_data:
        try:
            result["backup"] = str(backup_sqlite(db))
        except FileExistsError as exc:
            fix = "wait a second and run it again, or move the old backup away"
            result.update(status="failed", reason="backup_exists", recovery=fix)
            raise AppServerError(
                f"backup {exc.filename} already exists; {fix}", hint=fix, data=result
            ) from None
        except (OSError, sqlite3.Error) as exc:
            fix = "free space or fix permissions next to the database, or --no-backup"
            result.update(status="failed", reason="backup_failed", recovery=fix)
            raise AppServerError(
                f"cannot back up {db}: {exc}; {fix}", hint=fix, data=result
            ) from None
    try:
        call_command("migrate", interactive=False, verbosity=0)
    except Exception as exc:
        fix = (
            f"restore {result['backup']} over {db} and report the error"
            if result["backup"]
            else "report the error; the database may be partly migrated"
        )
        result.update(status="failed", reason="migration_error", recovery=fix)
        raise AppServerError(f"migration failed: {exc}", hint=fix, data=result) from exc
    after = schema_state()
    result.update(
        migrated=bool(before.pending),
        to_schema_version=after.version,
        applied=before.pending,
    )
    return result
