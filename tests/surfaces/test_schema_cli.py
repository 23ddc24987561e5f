"""Surface tools: `dispatch schema`, `dispatch completion`, `dispatch token`."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from dispatchsite.core.registry import internal_fields, load_ops
from dispatchsite.surfaces.cli import build_parser, main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, Any]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    parse = lambda text: json.loads(text) if text.strip() else None  # noqa: E731
    return (
        status,
        parse(out),
        parse(err.strip().splitlines()[-1] if err.strip() else ""),
    )


def test_it_prints_the_schemas_of_every_op(capsys: pytest.CaptureFixture[str]) -> None:
    for op in load_ops().values():
        status, out, _err = run(capsys, "schema", *op.cli.split())
        assert status == 0, op.cli
        assert out["command"] == op.cli
        assert out["op"] == op.id
        assert out["input"]["type"] == "object"
        assert out["output"]["type"] == "object"
        hidden = internal_fields(op.input)
        assert not hidden & set(out["input"].get("properties", {}))
        assert not hidden & set(out["input"].get("required", []))


def test_it_accepts_quoted_spellings_and_op_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _status, quoted, _ = run(capsys, "schema", "daemon status")
    _status, split, _ = run(capsys, "schema", "daemon", "status")
    _status, by_id, _ = run(capsys, "schema", "status")
    assert quoted == split == by_id
    assert quoted["command"] == "daemon status"


def test_it_accepts_composed_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    composed = [op for op in load_ops().values() if op.cli_switch]
    if not composed:
        pytest.skip("no composed spelling (e.g. `list --unmanaged`) registered yet")
    for op in composed:
        status, out, _ = run(capsys, "schema", *op.cli.split())
        assert status == 0 and out["op"] == op.id


def test_it_hides_internal_fields_from_send(capsys: pytest.CaptureFixture[str]) -> None:
    _status, out, _ = run(capsys, "schema", "send")
    assert "caller_thread_id" not in out["input"]["properties"]
    assert {"lane", "text", "mode"} <= set(out["input"]["properties"])


@pytest.mark.django_db
def test_it_takes_the_lane_of_stop_once_positional_or_as_a_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _out, err = run(capsys, "stop")
    assert status == 2 and "`dispatch stop` needs a lane" in err["error"]["message"]
    status, _out, err = run(capsys, "stop", "@a", "--lane", "@b")
    assert status == 2 and "lane given twice" in err["error"]["message"]
    # One or the other reaches the op: no such lane here.
    for argv in (("stop", "@nope"), ("stop", "--lane", "@nope")):
        status, _out, err = run(capsys, *argv)
        assert status == 4 and "@nope" in err["error"]["message"], argv


@pytest.mark.parametrize("words", [["tail", "--follow"], ["nope"], []])
def test_it_rejects_unknown_commands(
    capsys: pytest.CaptureFixture[str], words: list[str]
) -> None:
    status, out, err = run(capsys, "schema", *words)
    assert status == 2
    assert out is None
    assert err["error"]["code"] == "validation"


def command_paths() -> set[str]:
    _root, nodes = build_parser()
    return {" ".join(path) for path in nodes if path}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_it_prints_completion_scripts(
    capsys: pytest.CaptureFixture[str], shell: str
) -> None:
    status = main(["completion", shell])
    script = capsys.readouterr().out
    assert status == 0
    assert "dispatch" in script
    for path in command_paths():
        assert path.split()[-1] in script, path
    if shell == "bash" and shutil.which("bash"):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_it_completes_subcommands_and_flags_in_bash(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    if not shutil.which("bash"):
        pytest.skip("no bash")
    main(["completion", "bash"])
    script = tmp_path / "dispatch.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> set[str]:
        probe = (
            f"source {script}; COMP_WORDS=(dispatch {' '.join(words)}); "
            f'COMP_CWORD={len(words)}; _dispatch_complete; echo "${{COMPREPLY[@]}}"'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
        return set(done.stdout.split())

    assert {"log", "status"} <= complete("daemon", "''")
    assert "--mode" in complete("send", "alpha", "--")
    assert {"token"} == complete("tok")
    assert {"create", "list", "revoke"} == complete("token", "''")


def test_it_rejects_unknown_shells(capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run(capsys, "completion", "tcsh")
    assert status == 2
    assert err["error"]["code"] == "validation"


@pytest.mark.django_db
def test_it_creates_lists_and_revokes_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, created, _ = run(capsys, "token", "create", "ci")
    assert status == 0
    assert created["token"].startswith(created["prefix"])
    status, listed, _ = run(capsys, "token", "list")
    assert [t["name"] for t in listed["tokens"]] == ["ci"]
    assert "token" not in listed["tokens"][0]
    assert "token_hash" not in listed["tokens"][0]
    status, revoked, _ = run(capsys, "token", "revoke", "ci", "--yes")
    assert status == 0 and revoked["active"] is False


@pytest.mark.django_db
def test_it_needs_confirmation_to_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "token", "create", "ci")
    status, _out, err = run(capsys, "token", "revoke", "ci", "--no-interactive")
    assert status == 2
    assert err["error"]["hint"] == "pass --yes"
    _status, listed, _ = run(capsys, "token", "list")
    assert listed["tokens"][0]["active"] is True


@pytest.mark.django_db
def test_it_reports_duplicate_and_unknown_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "token", "create", "ci")
    status, _out, err = run(capsys, "token", "create", "ci")
    assert status == 2 and err["error"]["code"] == "validation"
    status, _out, err = run(capsys, "token", "revoke", "nope", "--yes")
    assert status == 4 and err["error"]["code"] == "not_found"
