"""Console entry point: `dispatch <verb>` is exactly `manage.py dispatch <verb>`."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "dispatch", *sys.argv[1:]])
