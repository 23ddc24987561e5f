"""In-process launch tests: a scripted app-server gateway that records every call."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from dispatchsite.core.errors import DispatchError
from dispatchsite.core.origin import Origin
from dispatchsite.core.registry import execute
from lanes.worker import gateway

CTX = Origin(surface="test")


class Codex:
    """The calls `new` made, by method; answers like codex 0.169 does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def params(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]

    def __call__(
        self, host: str, method: str, params: dict[str, Any], **kwargs: Any
    ) -> Any:
        self.calls.append((method, params))
        if method == "thread/start":
            thread_id = str(uuid.uuid4())
            return {
                "thread": {"id": thread_id},
                "cwd": params["cwd"],
                "model": params.get("model", "mock-model"),
                "modelProvider": "mock",
            }
        if method == "turn/start":
            return {"turn": {"id": f"turn-{len(self.calls)}"}}
        if method == "thread/goal/set":
            return {"goal": {"objective": params.get("objective"), "status": "active"}}
        return {}


@pytest.fixture
def codex(monkeypatch: pytest.MonkeyPatch) -> Codex:
    fake = Codex()
    monkeypatch.setattr(gateway, "rpc", fake)
    return fake


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DISPATCH_HOME (config.toml, worktrees) for one test."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setattr(settings, "DISPATCH_HOME", path)
    monkeypatch.setattr(settings, "DISPATCH_CONFIG_FILE", path / "config.toml")
    monkeypatch.delenv("DISPATCH_WORKTREE_ROOT", raising=False)
    return path


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "t"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "README").write_text("hi\n")
    subprocess.run(["git", "add", "."], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True)
    return path


def write_packet(path: Path, **files: str | bytes) -> Path:
    """A packet folder; keys use '__' for '/' and '_dot_' for '.'."""
    path.mkdir(parents=True, exist_ok=True)
    for key, body in files.items():
        rel = key.replace("__", "/").replace("_dot_", ".")
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            target.write_bytes(body)
        else:
            target.write_text(body, encoding="utf-8")
    return path


FULL_PACKET: dict[str, str] = {
    "goal_dot_md": "Ship the feature",
    "prompt_dot_md": "Start with the tests",
    "output_dot_schema_dot_json": '{"type": "object", "required": ["ok"]}',
    "base_dot_md": "You are a careful engineer.",
    "developer_dot_md": "Answer in JSON.",
    "dispatch_dot_toml": 'sandbox = "workspace-write"\neffort = "low"\n',
    "hooks__pre_dot_sh": "echo never run\n",
    "codex__config_dot_toml": 'model = "x"\n',
    "notes_dot_txt": "unknown file\n",
}


def run(op: str, **params: Any) -> dict[str, Any]:
    return execute(op, params, CTX)


def refused(op: str, **params: Any) -> DispatchError:
    with pytest.raises(DispatchError) as caught:
        execute(op, params, CTX)
    return caught.value


Runner = Callable[..., dict[str, Any]]


def cli(
    capsys: pytest.CaptureFixture[str], *args: str, stdin: bytes | None = None
) -> tuple[int, Any, Any]:
    """`dispatch <args>` in-process: (exit status, stdout JSON, stderr error)."""
    import io
    import json
    import sys

    from dispatchsite.surfaces.cli import main

    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        status = main(list(args))
    finally:
        sys.stdin = saved
    captured = capsys.readouterr()
    out = json.loads(captured.out) if captured.out.strip() else None
    err = (
        json.loads(captured.err.strip().splitlines()[-1])["error"]
        if captured.err.strip()
        else None
    )
    return status, out, err
