"""`dispatch admin create-user`: an admin login without a terminal.

`manage.py createsuperuser` prompts for a password, and with `--noinput`
needs DJANGO_SUPERUSER_PASSWORD and skips silently when there is no
terminal. This command never prompts: the password comes from stdin
(`--password-stdin`), from an environment variable (`--password-env`), or is
generated and printed once. Running it again for an existing user sets the
new password (and staff rights), so it doubles as a password reset.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

from dispatchsite.core.commands import register_command

MIN_PASSWORD = 8


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username", help="the login name")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (one line)",
    )
    source.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable",
    )
    parser.add_argument("--email", default="", help="the user's email (optional)")
    parser.add_argument(
        "--staff-only",
        action="store_true",
        help="staff without superuser rights (sees only what it is granted)",
    )


def read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?)."""
    from dispatchsite.core.errors import ValidationError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        where = "stdin"
    elif args.password_env:
        password = os.environ.get(args.password_env, "")
        where = f"${args.password_env}"
    else:
        return secrets.token_urlsafe(18), True
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"the password from {where} is shorter than {MIN_PASSWORD} characters",
            hint="pass a longer one, or neither flag to generate one",
        )
    return password, False


@register_command(
    "admin create-user",
    help="create (or reset) an admin login for the web console; never prompts",
    configure=configure,
)
def admin_create_user(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth.models import User

    from dispatchsite.core.errors import ValidationError

    username = args.username.strip()
    if not username or len(username) > 150:
        raise ValidationError(
            "username must be 1 to 150 characters", hint="pass a short login name"
        )
    password, generated = read_password(args)
    user, created = User.objects.get_or_create(username=username)
    user.is_staff = True
    user.is_superuser = not args.staff_only
    user.is_active = True
    if args.email:
        user.email = args.email
    user.set_password(password)
    user.save()
    reply: dict[str, Any] = {
        "username": username,
        "created": created,
        "superuser": user.is_superuser,
        # Under the URL `dispatch up` printed (http://127.0.0.1:8321 by default).
        "login_path": "/admin/",
    }
    if generated:
        reply["password"] = password  # shown once, like `token create`
    return reply
