"""`new` resolution through the CLI: packets, file inputs, sources, presets, dry run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lanes.models import Lane
from tests.workspaces.conftest import FULL_PACKET, Codex, cli, write_packet
from workspaces.models import LaneLaunch, Packet

pytestmark = pytest.mark.django_db
Capsys = pytest.CaptureFixture[str]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def nothing_made(codex: Codex) -> None:
    assert Lane.objects.count() == 0
    assert codex.params("thread/start") == []
    assert Packet.objects.count() == 0


def test_it_launches_every_packet_file_kind(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    packet = write_packet(tmp_path / "pk", **FULL_PACKET)
    status, out, err = cli(
        capsys, "new", "--name", "a", "--cwd", str(tmp_path), "--packet", str(packet)
    )
    assert status == 0, err
    start = codex.params("thread/start")[0]
    assert start["baseInstructions"] == FULL_PACKET["base_dot_md"]
    assert start["developerInstructions"] == FULL_PACKET["developer_dot_md"]
    assert start["sandbox"] == "workspace-write"
    turn = codex.params("turn/start")[0]
    assert turn["input"][0]["text"] == FULL_PACKET["prompt_dot_md"]
    assert turn["outputSchema"] == {"type": "object", "required": ["ok"]}
    assert turn["effort"] == "low"
    goals = codex.params("thread/goal/set")
    # Paused before the first turn, activated after it: the prompt keeps its
    # per-turn settings (outputSchema) instead of steering a goal turn.
    assert [g.get("status") for g in goals] == ["paused", "active"]
    assert goals[0]["objective"] == FULL_PACKET["goal_dot_md"]
    assert out["unknown_packet_files"] == ["notes.txt"]
    assert out["aux_packet_dirs"] == ["codex", "hooks"]
    schema_source = next(s for s in out["sources"] if s["slot"] == "output_schema")
    canonical = json.dumps(
        {"type": "object", "required": ["ok"]}, sort_keys=True, separators=(",", ":")
    )
    assert schema_source["sha256"] == sha(canonical)
    assert schema_source["origin"] == "packet"
    assert schema_source["path"] == f"{packet.resolve()}/output.schema.json"
    # A later send reuses the schema kept in the lane's runtime settings.
    status, _, err = cli(capsys, "send", out["ref"], "again", "--queue")
    assert status == 0, err
    lane = Lane.objects.get(ref=out["ref"])
    assert lane.runtime_settings["output_schema"] == {
        "type": "object",
        "required": ["ok"],
    }
    # The hooks were staged nowhere and never run.
    assert not (tmp_path / ".agents").exists()
    packet_row = LaneLaunch.objects.get(lane=lane).packet
    assert packet_row is not None
    files = set(packet_row.files.values_list("path", flat=True))
    assert "hooks/pre.sh" in files and "codex/config.toml" in files


def test_it_resolves_each_slot_inline_over_file_over_packet_over_config(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    repo = tmp_path / "repo"
    (repo / ".dispatch").mkdir(parents=True)
    (repo / "dev.md").write_text("config developer")
    (repo / ".dispatch/config.toml").write_text(
        '[defaults]\nbase_instructions = "config base"\n'
        '[defaults.instructions]\ndeveloper_file = "dev.md"\n'
    )
    packet = write_packet(
        tmp_path / "pk",
        goal_dot_md="packet goal",
        prompt_dot_md="packet prompt",
        base_dot_md="packet base",
    )
    goal_file = tmp_path / "goal.txt"
    goal_file.write_text("file goal")
    status, out, err = cli(
        capsys,
        "new",
        "--dry-run",
        "--name",
        "a",
        "--cwd",
        str(repo),
        "--packet",
        str(packet),
        "--goal-file",
        str(goal_file),
        "--text",
        "inline prompt",
    )
    assert status == 0, err
    by_slot = {s["slot"]: s for s in out["sources"]}
    assert by_slot["prompt"] == {
        "slot": "prompt",
        "origin": "inline",
        "path": None,
        "bytes": len("inline prompt"),
        "sha256": sha("inline prompt"),
    }
    assert by_slot["goal"]["origin"] == "file"
    assert by_slot["goal"]["path"] == str(goal_file)
    assert by_slot["base"]["origin"] == "packet"
    assert by_slot["developer"] == {
        "slot": "developer",
        "origin": "repo_config",
        "path": str((repo / "dev.md").resolve()),
        "bytes": len("config developer"),
        "sha256": sha("config developer"),
    }
    assert by_slot["config"]["origin"] == "repo_config"
    nothing_made(codex)


def test_it_reads_one_input_from_stdin(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    status, out, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--input-file",
        "-",
        stdin="from stdin ✓".encode(),
    )
    assert status == 0, err
    assert codex.params("turn/start")[0]["input"][0]["text"] == "from stdin ✓"
    prompt = next(s for s in out["sources"] if s["slot"] == "prompt")
    assert prompt["origin"] == "stdin"
    assert prompt["bytes"] == len("from stdin ✓".encode())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-file", "-", "--goal-file", "-"], "both read stdin"),
        (["--text", "x", "--input-file", "{tmp}/p.md"], "--text and --input-file"),
        (["--goal", "x", "--goal-file", "{tmp}/p.md"], "--goal and --goal-file"),
        (["--input-file", "{tmp}/missing.md"], "{tmp}/missing.md"),
        (["--input-file", "{tmp}/latin1.md"], "not UTF-8"),
        (["--output-schema-file", "{tmp}/list.json"], "must be a JSON object"),
        (["--output-schema-file", "{tmp}/bad.json"], "not valid JSON"),
        (["--output-schema", "[1]"], "must be a JSON object"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--prefix", "${HOME}"], "unknown variable(s) HOME"),
        (["--stage", "goal"], "no goal to stage"),
        (["--stage", "all,goal"], "cannot be combined"),
        (["--workspace", "mystery"], "unknown workspace preset 'mystery'"),
        (["--goal", "g", "--ephemeral"], "ephemeral lane cannot have a goal"),
    ],
)
def test_it_refuses_bad_file_inputs_with_exit_2_and_makes_nothing(
    codex: Codex,
    home: Path,
    tmp_path: Path,
    capsys: Capsys,
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "p.md").write_text("p")
    (tmp_path / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "bad.json").write_text("{nope")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    for dry in ([], ["--dry-run"]):
        status, _, err = cli(
            capsys,
            "new",
            *dry,
            "--name",
            "a",
            "--cwd",
            str(tmp_path),
            *args,
            stdin=b"x",
        )
        assert status == 2, err
        assert message.replace("{tmp}", str(tmp_path)) in err["message"]
    nothing_made(codex)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"dispatch_dot_toml": "sandbox = [broken"}, "dispatch.toml: not valid TOML"),
        ({"dispatch_dot_toml": 'cwd = "/etc"'}, "dispatch.toml: unknown key(s) cwd"),
        ({"goal_dot_md": b"\xff\xfe"}, "goal.md: not UTF-8"),
        (
            {"output_dot_schema_dot_json": '"x"'},
            "output.schema.json: the output schema must be a JSON object",
        ),
        ({"output_dot_schema_dot_json": "{"}, "output.schema.json: not valid JSON"),
        ({"dispatch_dot_toml": 'sandbox = "yolo"'}, "sandbox 'yolo'"),
    ],
)
def test_it_refuses_bad_packets_naming_the_file(
    codex: Codex,
    home: Path,
    tmp_path: Path,
    capsys: Capsys,
    files: dict[str, str | bytes],
    message: str,
) -> None:
    packet = write_packet(tmp_path / "pk", **files)
    status, _, err = cli(
        capsys, "new", "--name", "a", "--cwd", str(tmp_path), "--packet", str(packet)
    )
    assert status == 2, err
    assert message in err["message"]
    nothing_made(codex)


def test_it_refuses_a_missing_packet_and_a_symlink_escaping_it(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--packet",
        str(tmp_path / "nowhere"),
    )
    assert status == 2
    assert f"{tmp_path}/nowhere: not a directory" in err["message"]
    secret = tmp_path / "secret.md"
    secret.write_text("outside")
    packet = write_packet(tmp_path / "pk", prompt_dot_md="p")
    (packet / "goal.md").symlink_to(secret)
    status, _, err = cli(
        capsys, "new", "--name", "a", "--cwd", str(tmp_path), "--packet", str(packet)
    )
    assert status == 2
    assert "goal.md: a symlink that escapes the packet folder" in err["message"]
    nothing_made(codex)


def test_it_applies_presets_left_to_right_and_flags_last(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    (home / "config.toml").write_text(
        '[defaults]\nmodel = "global-model"\n[presets.fast]\neffort = "minimal"\n'
    )
    repo = tmp_path / "myrepo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".dispatch").mkdir()
    (repo / ".dispatch/config.toml").write_text(
        '[defaults]\nsandbox = "read-only"\nprefix = "[${DISPATCH.CWD.REPO}]"\n'
        '[presets.write]\nsandbox = "workspace-write"\neffort = "high"\n'
        '[presets.low]\neffort = "low"\n'
    )
    sub = repo / "src"
    sub.mkdir()
    status, out, err = cli(
        capsys,
        "new",
        "--dry-run",
        "--name",
        "a",
        "--cwd",
        str(sub),
        "--preset",
        "write",
        "--preset",
        "low",
        "--preset",
        "fast",
        "--model",
        "flag-model",
    )
    assert status == 0, err
    assert out["settings"]["sandbox"] == "workspace-write"
    assert out["settings"]["effort"] == "minimal"
    assert out["settings"]["model"] == "flag-model"
    assert out["handle"] == "@[myrepo] a"
    (repo / ".dispatch/config.toml").write_text(
        "[defaults]\nsandbox = 'x'\nbogus = 1\n"
    )
    status, _, err = cli(capsys, "new", "--dry-run", "--name", "a", "--cwd", str(sub))
    assert status == 2
    assert (
        f"{repo}/.dispatch/config.toml: [defaults]: unknown key(s) bogus"
        in err["message"]
    )


def test_it_dry_runs_without_changing_anything(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    packet = write_packet(tmp_path / "pk", **FULL_PACKET)
    status, out, err = cli(
        capsys,
        "new",
        "--dry-run",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--packet",
        str(packet),
        "--stage",
        "all",
    )
    assert status == 0, err
    assert out["would_send"] is True and out["goal_set"] is True
    assert out["stage"]["parts"] == [
        "config",
        "goal",
        "prompt",
        "output_schema",
        "base",
        "developer",
        "hooks",
        "codex_config",
    ]
    assert out["would_send_params"] == {
        "thread_start": ["baseInstructions", "developerInstructions"],
        "turn_start": ["outputSchema"],
    }
    assert not (tmp_path / ".agents").exists()
    nothing_made(codex)
    assert codex.calls == []


def test_it_tells_api_callers_that_only_the_cli_reads_stdin(
    codex: Codex, home: Path, tmp_path: Path
) -> None:
    from tests.workspaces.conftest import refused

    error = refused("new", name="a", cwd=str(tmp_path), input_file="-")
    assert error.exit_status == 2
    assert "--input-file -: stdin can only be read by the CLI" in error.message
    nothing_made(codex)
