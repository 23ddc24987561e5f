"""`manage.py dispatch <verb>`: the whole CLI (see dispatchsite.surfaces.cli)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from dispatchsite.surfaces.cli import main


class Command(BaseCommand):
    help = "dispatch: a local control plane for Codex threads (lanes)"

    def run_from_argv(self, argv: list[str]) -> None:
        # Our own argparse tree replaces Django's option parsing entirely.
        sys.exit(main(argv[2:]))

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("words", nargs="*")
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        status = main([*options.get("words", []), *args])
        if status:
            sys.exit(status)
