"""CLI verbs that manage the local installation: up, down, doctor, migrate.

`--json` is added to every command by the CLI itself; output is always JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dispatchsite.core.commands import register_command
from dispatchsite.core.errors import ValidationError
from dispatchsite.runtime.lifecycle import DEFAULT_PORT, stack_down, stack_up
from dispatchsite.runtime.stack import COMPONENTS
from dispatchsite.runtime.supervisor import configure_parser as configure_supervisor
from dispatchsite.runtime.supervisor import run_supervisor


def _configure_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="supervise in this process instead of detaching (for systemd)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"web port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--no-embedded",
        action="store_true",
        help="run only the components named below, against DATABASE_URL and "
        "DISPATCH_REDIS_URL (several machines)",
    )
    for name, what in (
        ("web", "the web server (REST, MCP, pages); it also migrates"),
        ("celery", "a celery worker (tasks)"),
        ("beat", "celery beat (the scheduler; one per installation)"),
        ("worker", "the app-server worker for --host"),
    ):
        parser.add_argument(f"--{name}", action="store_true", help=what)
    parser.add_argument(
        "--host", default=None, help="host name of this machine (DISPATCH_HOST)"
    )


@register_command(
    "up",
    help="start redis, web, worker and celery under a supervisor "
    "(or, with --no-embedded, only the components named)",
    configure=_configure_up,
)
def up(args: argparse.Namespace) -> dict[str, Any]:
    from lanes.services.hosts import host_name_check

    chosen = tuple(name for name in COMPONENTS if getattr(args, name, False))
    if chosen and not args.no_embedded:
        raise ValidationError(
            f"--{' --'.join(chosen)} only apply with --no-embedded; without it "
            "`up` runs everything",
            hint="add --no-embedded, or drop the component flags",
            data={"field": "--no-embedded"},
        )
    if args.no_embedded and not chosen:
        raise ValidationError(
            "--no-embedded needs the components to run: any of --web, --celery, "
            "--beat, --worker",
            hint="e.g. `dispatch up --no-embedded --worker --host NAME`",
            data={"field": "--no-embedded"},
        )
    host = host_name_check(args.host) if args.host is not None else None
    return stack_up(
        port=args.port,
        foreground=args.foreground,
        components=chosen if args.no_embedded else None,
        host=host,
    )


@register_command("down", help="stop everything `dispatch up` started")
def down(args: argparse.Namespace) -> dict[str, Any]:
    return stack_down()


@register_command(
    "supervise",
    help="internal: the supervisor process behind `dispatch up`",
    configure=configure_supervisor,
)
def supervise(args: argparse.Namespace) -> None:
    run_supervisor(args)


def positive_seconds(raw: str) -> float:
    """An argparse type: a number of seconds above zero."""
    try:
        seconds = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a number of seconds"
        ) from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {raw}")
    return seconds


def _configure_doctor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-app-server",
        action="store_true",
        help="skip the initialize smoke against a throwaway app-server",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        help="app-server smoke timeout (s)",
    )


@register_command(
    "doctor",
    help="check codex, DISPATCH_HOME, the database, redis and the daemon",
    configure=_configure_doctor,
)
def doctor(args: argparse.Namespace) -> dict[str, Any]:
    from dispatchsite.runtime.doctor import run_doctor

    report = run_doctor(app_server=not args.no_app_server, timeout=args.timeout)
    if report["status"] == "fail":
        # The report is the useful output even on failure, so it goes to
        # stdout like a success and only the exit status differs.
        print(json.dumps(report, indent=2, default=str))
        sys.stdout.flush()
        raise SystemExit(8)
    return report


def _configure_migrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-backup", action="store_true", help="skip the SQLite backup"
    )
    parser.add_argument(
        "--allow-running",
        action="store_true",
        help="migrate even while the daemon runs",
    )


@register_command(
    "registry migrate",
    help="apply database migrations after a timestamped backup",
    configure=_configure_migrate,
)
def registry_migrate(args: argparse.Namespace) -> dict[str, Any]:
    from dispatchsite.runtime.migrate import registry_migrate as migrate

    return migrate(backup=not args.no_backup, allow_running=args.allow_running)
