"""Headless Chromium against a running stack: the console's pages as people see them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import REPO, Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ADMIN = "admin"
PASSWORD = "console-pw"


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("DISPATCH_REQUIRE_E2E") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def web_stack(root: Path, **extra_env: str) -> Iterator[Stack]:
    """A stack with daphne, the fake app-server and a superuser `admin`."""
    require_chromium()
    stack = Stack(root, codex="fake", extra_env=dict(extra_env))
    try:
        stack.start(web=True)
        subprocess.run(
            [sys.executable, "manage.py", "createsuperuser", "--noinput"]
            + ["--username", ADMIN, "--email", "admin@example.com"],
            env={**stack.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        yield stack
    finally:
        stack.stop()


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def logged_in_page(browser: Any, stack: Stack, path: str) -> Any:
    """A new page, logged in as `admin` through the admin's login form, at `path`."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{stack.web_url}/admin/login/?next={path}")
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{path}")
    return page
