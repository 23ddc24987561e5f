"""The thin `dispatch` client: the CLI without Django or pydantic.

With the daemon running, `dispatch <verb>` rebuilds its parser from the
snapshot the daemon publishes (dispatchsite.surfaces.cli_snapshot, cached in
DISPATCH_HOME/run) and runs the op over REST with the local CLI's token,
which the daemon runs and audits as the CLI's (surface "cli", the OS user).
Everything it cannot do the same way (surface commands, calls naming a
field the daemon would resolve against its own cwd) returns Declined and
runs in process as before. Imports stay stdlib-only plus
dispatchsite.core.errors and dispatchsite.surfaces.formatting (both
stdlib-only): tests/surfaces/test_thin_client.py checks it.
"""
