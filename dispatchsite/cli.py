"""Console entry point: `dispatch <verb>` is exactly `manage.py dispatch <verb>`."""

from __future__ import annotations

import json
import os
import sys

# Verbs that serve, supervise or migrate need every installed app; all other
# verbs only run ops and load dispatch's own apps (see DISPATCH_OPS_ONLY).
FULL_APP_VERBS = {
    "up",
    "down",
    "supervise",
    "doctor",
    "registry",
    "worker",
    "journal",
    "admin",
}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    from django.core.exceptions import ImproperlyConfigured

    argv = sys.argv[1:]
    ops_only = bool(argv) and argv[0] not in FULL_APP_VERBS
    if ops_only:
        os.environ["DISPATCH_OPS_ONLY"] = "1"
    try:
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        error = {"code": "validation", "message": str(exc), "exit_status": 2}
        sys.stderr.write(json.dumps({"error": error}) + "\n")
        sys.exit(2)
    finally:
        # Read once by settings; processes this one starts get the full set.
        if ops_only:
            os.environ.pop("DISPATCH_OPS_ONLY", None)
    # The same entry `manage.py dispatch` reaches through its management
    # command, without Django's command lookup on every call.
    from dispatchsite.surfaces.cli import main as dispatch_main

    sys.exit(dispatch_main(argv))


if __name__ == "__main__":
    main()
