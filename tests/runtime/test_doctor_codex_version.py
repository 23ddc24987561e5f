"""`dispatch doctor` names the supported codex range and warns below it."""

from __future__ import annotations

import sys
from pathlib import Path

from dispatchsite.runtime.doctor import CODEX_OLDEST_SUPPORTED, CODEX_RANGE
from tests.runtime import cli, cli_env

FAKE_APPSERVER = Path(__file__).resolve().parents[1] / "fakes" / "fake_appserver.py"


def codex_reporting(root: Path, version: str) -> Path:
    """A codex that says `version` and otherwise runs the fake app-server."""
    wrapper = root / f"codex-{version}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "codex-cli {version}"; exit 0; fi\n'
        f'exec "{sys.executable}" "{FAKE_APPSERVER}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def codex_check(root: Path, version: str) -> dict[str, object]:
    env = cli_env(root, DISPATCH_CODEX_BIN=str(codex_reporting(root, version)))
    result = cli("doctor", "--no-app-server", env=env)
    assert result.status == 0, result.stderr
    (check,) = [c for c in result.json["checks"] if c["name"] == "codex_binary"]
    return dict(check)


def test_it_warns_about_a_codex_older_than_the_supported_range(tmp_path: Path) -> None:
    check = codex_check(tmp_path, "0.160.2")
    assert check["status"] == "warn"
    assert "0.160.2" in str(check["summary"])
    assert f"supported {CODEX_RANGE}" in str(check["summary"])
    assert "npm install -g @openai/codex@" in str(check["recovery"])
    assert check["data"] == {
        "path": str(tmp_path / "codex-0.160.2"),
        "version": "0.160.2",
        "configured": str(tmp_path / "codex-0.160.2"),
        "supported": CODEX_RANGE,
    }


def test_it_accepts_the_oldest_supported_and_newer_codex(tmp_path: Path) -> None:
    oldest = codex_check(tmp_path, CODEX_OLDEST_SUPPORTED)
    assert oldest["status"] == "ok" and oldest["recovery"] is None
    newer = codex_check(tmp_path, "1.0.0")
    assert newer["status"] == "ok"
    assert f"newer than the tested {CODEX_RANGE}" in str(newer["summary"])


def test_it_supports_from_the_version_ci_pins() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert f'CODEX_VERSION="{CODEX_OLDEST_SUPPORTED}"' in ci
    # CI runs the end-to-end tests on the newest published codex as well.
    assert "npm view @openai/codex version" in ci
    assert "pytest -m e2e" in ci
