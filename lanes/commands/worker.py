"""Lane surface commands that are not ops: the worker daemon."""

from __future__ import annotations

import argparse

from django.conf import settings

from dispatchsite.core.commands import register_command


def configure_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="host name this worker owns")


@register_command(
    "worker",
    help="run the app-server worker (started by `dispatch up`)",
    configure=configure_worker,
)
def worker(args: argparse.Namespace) -> None:
    from lanes.worker.daemon import run_worker

    run_worker(host=args.host or settings.DISPATCH_HOST)
