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
    # The same entry `manage.py dispatch` reaches through its management
    # command, without Django's command lookup on every call.
    from dispatchsite.surfaces.cli import main as dispatch_main

    sys.exit(dispatch_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
