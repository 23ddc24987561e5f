"""Console entry point: `dispatch <verb>` is exactly `manage.py dispatch <verb>`."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        error = {"code": "validation", "message": str(exc), "exit_status": 2}
        sys.stderr.write(json.dumps({"error": error}) + "\n")
        sys.exit(2)
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "dispatch", *sys.argv[1:]])


if __name__ == "__main__":
    main()
