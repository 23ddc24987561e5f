"""Staging, workspace discovery and setup, and git worktrees for `new`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lanes.models import AuditEntry, Lane
from tests.workspaces.conftest import FULL_PACKET, Codex, cli, git_repo, write_packet
from workspaces.models import Workspace, Worktree

pytestmark = pytest.mark.django_db
Capsys = pytest.CaptureFixture[str]


def branches(repo: Path) -> str:
    return subprocess.run(
        ["git", "branch", "--list"], cwd=repo, capture_output=True, text=True
    ).stdout


def test_it_stages_the_resolved_files_atomically(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    packet = write_packet(tmp_path / "pk", **FULL_PACKET)
    status, out, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--packet",
        str(packet),
        "--text",
        "inline wins",
        "--stage",
        "all",
        "--inline",
        "base",
    )
    assert status == 0, err
    session = tmp_path / ".agents/sessions" / out["ref"]
    assert out["staged"]["session_dir"] == str(session)
    assert (session / "packet/prompt.md").read_text() == "inline wins"
    assert (session / "packet/hooks/pre.sh").is_file()
    assert (session / "packet/codex/config.toml").is_file()
    assert not (session / "packet/base.md").exists()
    assert (session / "scratch").is_dir()
    state = json.loads((session / "state.json").read_text())
    assert state["phase"] == "staged" and state["ref"] == out["ref"]
    assert {f["part"] for f in state["files"]} == set(out["staged"]["parts"])
    assert [p.name for p in (tmp_path / ".agents/sessions").iterdir()] == [out["ref"]]


def test_it_leaves_the_lane_in_error_with_no_turn_when_staging_fails(
    codex: Codex,
    home: Path,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workspaces import staging

    real_replace = staging.os.replace

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(staging.os, "replace", refuse)
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--text",
        "hi",
        "--goal",
        "g",
        "--stage",
        "prompt",
    )
    monkeypatch.setattr(staging.os, "replace", real_replace)
    assert status == 9, err
    assert err["code"] == "staging"
    assert "Permission denied" in err["message"]
    lane = Lane.objects.get()
    assert lane.status == Lane.Status.ERROR
    assert codex.params("turn/start") == []
    assert codex.params("thread/goal/set") == []
    assert AuditEntry.objects.filter(op="stage", outcome="staging").exists()
    # Nothing half-written: no session folder, no build folder.
    assert list((tmp_path / ".agents/sessions").iterdir()) == []


def test_it_refuses_to_overwrite_a_session_folder(
    codex: Codex,
    home: Path,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lanes.services import registration

    monkeypatch.setattr(registration, "lane_ref_allocate", lambda thread_id: "0Taken")
    taken = tmp_path / ".agents/sessions/0Taken"
    taken.mkdir(parents=True)
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--text",
        "hi",
        "--stage",
        "prompt",
    )
    assert status == 9
    assert f"{taken} already exists" in err["message"]
    assert codex.params("turn/start") == []
    assert list(taken.iterdir()) == []


def environment(repo: Path, setup: str) -> None:
    folder = repo / ".codex/environments"
    folder.mkdir(parents=True)
    (folder / "environment.toml").write_text(
        f'version = 1\nname = "dev"\n[setup]\nscript = """{setup}"""\n'
    )


def test_it_runs_workspace_setup_only_when_asked_or_trusted(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    repo = git_repo(tmp_path / "repo")
    environment(repo, "echo ran >> setup.log")
    sub = repo / "src"
    sub.mkdir()
    base = ["new", "--dry-run", "--cwd", str(sub), "--workspace", "auto"]
    status, out, err = cli(capsys, *base, "--name", "a")
    assert status == 0, err
    assert out["workspace"]["state"] == "discovered"
    assert out["workspace"]["setup"]["policy"] == "not_allowed"
    assert out["effective_cwd"] == str(repo)
    status, out, _ = cli(capsys, *base, "--name", "a", "--workspace-setup", "run")
    assert out["workspace"]["setup"]["policy"] == "explicit"
    assert not (repo / "setup.log").exists()  # a dry run runs nothing

    status, out, err = cli(capsys, *base[:1], *base[2:], "--name", "b")
    assert status == 0, err
    assert not (repo / "setup.log").exists()  # not allowed: not run
    (home / "config.toml").write_text("[policy]\nallow_workspace_setup = true\n")
    status, out, err = cli(capsys, *base[:1], *base[2:], "--name", "c")
    assert status == 0, err
    assert out["workspace"]["setup"]["policy"] == "trusted"
    assert out["workspace"]["state"] == "setup_completed"
    assert (repo / "setup.log").read_text() == "ran\n"
    assert codex.params("thread/start")[-1]["cwd"] == str(repo)
    assert Workspace.objects.get(lane__title="c").setup["exit_code"] == 0


def test_it_creates_no_thread_when_setup_fails(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    repo = git_repo(tmp_path / "repo")
    environment(repo, "echo broken >&2; exit 3")
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(repo),
        "--workspace",
        "auto",
        "--workspace-setup",
        "run",
        "--worktree",
        "create",
    )
    assert status == 2
    assert "failed (exit 3)" in err["message"]
    assert err["data"]["stderr_tail"] == "broken\n"
    assert codex.params("thread/start") == []
    # The worktree made for it is gone again, branch included.
    assert not (home / "worktrees/repo/a").exists()
    assert "dispatch/a" not in branches(repo)
    assert Worktree.objects.count() == 0


def test_it_runs_the_lane_in_a_new_worktree(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src/main.py").write_text("")
    git_repo(repo)
    status, out, err = cli(
        capsys,
        "new",
        "--name",
        "wt",
        "--cwd",
        str(repo / "src"),
        "--worktree",
        "create",
    )
    assert status == 0, err
    path = home / "worktrees/repo/wt"
    assert out["worktree"] == {
        "mode": "create",
        "state": "created",
        "path": str(path),
        "branch": "dispatch/wt",
        "base": "HEAD",
        "head": out["worktree"]["head"],
        "source_repo": str(repo),
        "created": True,
    }
    assert (path / "README").is_file()
    assert codex.params("thread/start")[0]["cwd"] == str(path / "src")
    assert "dispatch/wt" in branches(repo)
    status, listed, _ = cli(capsys, "workspace", "list")
    assert [w["path"] for w in listed["worktrees"]] == [str(path)]
    assert listed["worktrees"][0]["lane"] == out["ref"]


def test_it_refuses_an_occupied_worktree_path_or_branch(
    codex: Codex,
    home: Path,
    tmp_path: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = git_repo(tmp_path / "repo")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(repo),
        "--worktree",
        "create",
        "--worktree-path",
        str(occupied),
    )
    assert status == 2
    assert f"the path {occupied} already exists" in err["message"]
    other = tmp_path / "other"
    subprocess.run(
        ["git", "worktree", "add", "-q", "-b", "taken", str(other)],
        cwd=repo,
        check=True,
    )
    monkeypatch.setenv("DISPATCH_WORKTREE_ROOT", str(tmp_path / "trees"))
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(repo),
        "--worktree",
        "create",
        "--worktree-branch",
        "taken",
    )
    assert status == 2
    assert f"branch taken is checked out at {other}" in err["message"]
    assert not (tmp_path / "trees").exists()
    status, _, err = cli(
        capsys,
        "new",
        "--name",
        "a",
        "--cwd",
        str(tmp_path),
        "--worktree",
        "create",
    )
    assert status == 2
    assert "is not inside a git repository" in err["message"]
    assert codex.params("thread/start") == []
    assert Lane.objects.count() == 0


def test_it_cleans_worktrees_of_archived_lanes_only(
    codex: Codex, home: Path, tmp_path: Path, capsys: Capsys
) -> None:
    repo = git_repo(tmp_path / "repo")
    refs = []
    for name in ("keep", "done"):
        status, out, err = cli(
            capsys,
            "new",
            "--name",
            name,
            "--cwd",
            str(repo),
            "--worktree",
            "create",
            "--no-send",
        )
        assert status == 0, err
        refs.append(out["ref"])
    Lane.objects.filter(ref=refs[1]).update(status=Lane.Status.ARCHIVED)
    status, _, err = cli(capsys, "workspace", "clean", "--no-interactive")
    assert status == 2 and "needs confirmation" in err["message"]
    status, out, err = cli(capsys, "workspace", "clean", "--yes")
    assert status == 0, err
    assert [w["lane"] for w in out["removed"]] == [refs[1]]
    assert not (home / "worktrees/repo/done").exists()
    assert (home / "worktrees/repo/keep").is_dir()
    assert "dispatch/done" not in branches(repo)
    status, listed, _ = cli(capsys, "workspace", "list")
    assert [w["lane"] for w in listed["worktrees"]] == [refs[0]]
