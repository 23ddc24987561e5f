from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dispatchsite.runtime import doctor, home
from tests.runtime import cli, cli_env, dispatch_home, fake_codex

CHECKS = [
    "codex_binary",
    "codex_home",
    "codex_auth",
    "dispatch_home",
    "dispatch_config",
    "registry",
    "redis",
    "daemon",
    "journal",
    "plugin_assets",
    "app_server",
]


def test_it_reports_every_check_on_a_fresh_home(tmp_path: Path) -> None:
    result = cli("doctor", "--no-app-server", env=cli_env(tmp_path))

    assert result.status == 0, result.stderr
    report = result.json
    assert report["status"] == "warn"
    assert report["version"]
    assert [c["name"] for c in report["checks"]] == CHECKS
    for check in report["checks"]:
        assert set(check) == {"name", "status", "summary", "detail", "recovery", "data"}
        assert check["status"] in {"ok", "warn"}, check
        if check["status"] == "warn":
            assert check["recovery"], check
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["codex_binary"]["data"]["version"] == "0.169.0"
    assert by_name["registry"]["summary"].startswith("no database yet")
    assert by_name["daemon"]["summary"] == "not running"
    assert by_name["app_server"]["summary"] == "skipped (--no-app-server)"


def test_it_exits_8_with_the_report_when_a_check_fails(tmp_path: Path) -> None:
    env = cli_env(tmp_path, DISPATCH_CODEX_BIN=str(tmp_path / "missing-codex"))

    result = cli("doctor", env=env)

    assert result.status == 8
    report = result.json
    assert report["status"] == "fail"
    codex = report["checks"][0]
    assert codex["name"] == "codex_binary" and codex["status"] == "fail"
    assert "missing-codex" in codex["summary"]
    assert "DISPATCH_CODEX_BIN" in codex["recovery"]
    assert report["checks"][-1]["summary"] == "skipped: no codex binary"


def test_it_smokes_a_throwaway_app_server(tmp_path: Path) -> None:
    with dispatch_home(tmp_path / "home", DISPATCH_CODEX_BIN=str(fake_codex(tmp_path))):
        check = doctor._check_app_server(["codex"], enabled=True, timeout=10)

    assert check["status"] == "ok", check
    assert check["data"]["version"] == "0.169.0"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(check["data"]["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the throwaway app-server outlived the check")


def test_it_fails_the_smoke_when_the_app_server_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_APPSERVER_MODE", "hang")
    with dispatch_home(tmp_path / "home", DISPATCH_CODEX_BIN=str(fake_codex(tmp_path))):
        check = doctor._check_app_server(["codex"], enabled=True, timeout=1)

    assert check["status"] == "fail", check
    assert check["recovery"]


def write_bundle(root: Path, *, mcp: str = "{}") -> Path:
    bundle = root / "plugins" / "dispatch"
    (bundle / ".codex-plugin").mkdir(parents=True)
    (bundle / ".codex-plugin" / "plugin.json").write_text(json.dumps({"name": "d"}))
    (bundle / ".mcp.json").write_text(mcp)
    for skill in ("dispatch", "dm"):
        (bundle / "skills" / skill).mkdir(parents=True)
        (bundle / "skills" / skill / "SKILL.md").write_text("---\nname: x\n---\n")
    return bundle


def test_it_warns_while_the_plugin_bundle_is_absent(tmp_path: Path) -> None:
    with dispatch_home(tmp_path / "home", BASE_DIR=tmp_path):
        check = doctor._check_plugin_assets()

    assert check["status"] == "warn"
    assert len(check["data"]["missing"]) == 4


def test_it_accepts_a_complete_plugin_bundle(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    with dispatch_home(tmp_path / "home", BASE_DIR=tmp_path):
        check = doctor._check_plugin_assets()

    assert check["status"] == "ok", check


def test_it_fails_on_invalid_plugin_json(tmp_path: Path) -> None:
    write_bundle(tmp_path, mcp="{broken")
    with dispatch_home(tmp_path / "home", BASE_DIR=tmp_path):
        check = doctor._check_plugin_assets()

    assert check["status"] == "fail"
    assert ".mcp.json" in check["summary"]


def test_it_warns_about_a_stale_pidfile(tmp_path: Path) -> None:
    with dispatch_home(tmp_path / "home"):
        home.ensure_home()
        pidfile = home.supervisor_pidfile()
        pidfile.write_text(f"{os.getpid()}\n")
        check = doctor._check_daemon()

    assert check["status"] == "warn"
    assert check["summary"].startswith("stale ")
    assert check["data"]["stale"] == [str(pidfile)]
    assert "dispatch down" in check["recovery"]


def test_it_fails_on_a_corrupt_dispatch_config(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "config.toml").write_text("[policy]\napprovals = 'sometimes'\n")
    with dispatch_home(root):
        check = doctor._check_dispatch_config()

    assert check["status"] == "fail"
    assert "policy.approvals" in check["summary"]
    assert check["recovery"]


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "soon"])
def test_it_refuses_a_timeout_that_is_not_a_positive_number(
    tmp_path: Path, timeout: str
) -> None:
    result = cli("doctor", "--timeout", timeout, env=cli_env(tmp_path))
    assert result.status == 2, result.stdout
    assert result.error["code"] == "validation"
    assert "--timeout" in result.error["message"]
