"""Console entry point: `dispatch <verb>` is exactly `manage.py dispatch <verb>`.

With the daemon running, verbs it can answer the same way go over REST
without importing Django (dispatchsite.thin); the rest run in process.
"""

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
    argv = sys.argv[1:]
    declined = None
    if argv and argv[0] not in FULL_APP_VERBS:
        from dispatchsite.thin.client import run

        try:
            outcome = run(argv)
        except KeyboardInterrupt:
            sys.exit(130)  # as the in-process CLI (a watch long poll)
        if isinstance(outcome, int):
            sys.exit(outcome)
        declined = outcome
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatchsite.settings")
    from django.core.exceptions import ImproperlyConfigured

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

    status = dispatch_main(argv)
    if declined is not None and declined.token_wanted:
        # The daemon is up but this user has no token for it yet: make the
        # local CLI's one so the next call goes thin.
        from dispatchsite.surfaces.daemon import resolve_cli_token

        resolve_cli_token(declined.refused)
    sys.exit(status)


if __name__ == "__main__":
    main()
