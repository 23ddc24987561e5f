"""Lane surface commands that are not ops: the worker daemon."""

from __future__ import annotations

import argparse

from django.conf import settings

from dispatchsite.core.commands import register_command


def configure_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="host name this worker owns")


@register_command(
    "worker",
    help="run the app-server worker for --host in the foreground "
    "(`dispatch up` starts one too)",
    configure=configure_worker,
)
def worker(args: argparse.Namespace) -> None:
    from lanes.services.hosts import host_name_check
    from lanes.worker.daemon import run_worker

    # In the foreground until SIGTERM; `up --worker` runs this same command.
    run_worker(host=host_name_check(args.host or settings.DISPATCH_HOST))
