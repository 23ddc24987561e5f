"""The thin CLI parses exactly as the in-process one, for every op.

The thin parser is rebuilt from the snapshot the daemon serves (after a
JSON round trip, as on the wire); each branch must equal the parser
`build_parser` makes (flags, types, choices, defaults, positionals, help
text) and yield the same op and params, or the same error, for sample argv
generated from the registry: a new verb is covered without a new test.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import sys
from typing import Any

import pytest

from dispatchsite.core.errors import DispatchError
from dispatchsite.core.registry import load_ops
from dispatchsite.surfaces import cli
from dispatchsite.surfaces.cli_snapshot import (
    CALLER_CWD_OPS,
    build_snapshot,
    parser_data,
)
from dispatchsite.surfaces.commands import tools
from dispatchsite.surfaces.completion import completion_script
from dispatchsite.thin import client as thin_client
from dispatchsite.thin import docs as thin_docs
from dispatchsite.thin import inputs as thin_inputs
from dispatchsite.thin import parser as thin

SNAPSHOT: dict[str, Any] = json.loads(json.dumps(build_snapshot("test")))
FIRST_WORDS = sorted(k for k in SNAPSHOT["nodes"] if k and " " not in k)


def branches() -> list[str | None]:
    # Commands with parsers of their own (doctor, supervise) always run in
    # process; test_it_represents_every_op_branch keeps ops out of that set.
    return [None, *(w for w in FIRST_WORDS if thin.branch_thin(SNAPSHOT, w))]


@pytest.mark.parametrize("first", branches())
def test_it_rebuilds_each_branch_with_the_same_arguments_and_help(
    first: str | None,
) -> None:
    _root, full = cli.build_parser(first)
    _thin_root, rebuilt = thin.build_parser(SNAPSHOT, first)
    assert set(rebuilt) == set(full)
    for path, node in full.items():
        if not rebuilt[path].data["thin"]:
            assert first is None  # left empty; thin_argv keeps argv out
            assert not thin.thin_argv(SNAPSHOT, [path[0]])
            continue
        assert parser_data(rebuilt[path].parser) == parser_data(node.parser), path
        assert rebuilt[path].parser.format_help() == node.parser.format_help(), path


def test_it_represents_every_op_branch() -> None:
    # Only surface commands with parsers of their own may fall back.
    words = {op["cli"].split()[0] for op in SNAPSHOT["ops"].values()}
    assert all(thin.branch_thin(SNAPSHOT, word) for word in words)


def sample_value(action: dict[str, Any]) -> str:
    if action["choices"]:
        return str(action["choices"][-1])
    return "3" if action["type"] in {"int", "float"} else "v1"


def samples_for(op: dict[str, Any]) -> list[list[str]]:
    """Argv that exercise every argument of the op's node once, plus the
    mistakes a caller makes (a missing positional, an unknown flag)."""
    words = op["cli"].split()
    node = SNAPSHOT["nodes"][" ".join(w for w in words if not w.startswith("--"))]
    actions = [
        a
        for a in node["actions"]
        if a["kind"] not in {"_HelpAction", "_SubParsersAction"}
    ]
    positionals = [sample_value(a) for a in actions if not a["option_strings"]]
    base = [*words, *positionals]
    found = [base, [*words], [*base, "--bogus"], [*base, "extra-word"]]
    for action in actions:
        if not action["option_strings"]:
            continue
        flag = action["option_strings"][0]
        if action["kind"] in {"_StoreAction", "_AppendAction"}:
            found.append([*base, flag, sample_value(action)])
            if action["type"] in {"int", "float"}:
                found.append([*base, flag, "not-a-number"])
        else:
            found.append([*base, *action["option_strings"]])
    return found


def outcome_full(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    first = argv[0]
    parser, nodes = cli.build_parser(first)
    monkeypatch.setattr(cli, "execute", lambda op_id, params, origin: (op_id, params))
    monkeypatch.setattr(cli, "file_params", lambda op, params: params)
    monkeypatch.setattr(cli, "confirm_destroy", lambda op, args, params: None)
    try:
        args = parser.parse_args(argv)
        if getattr(args, "_surface_command", None) is not None or any(
            getattr(args, dest, False)
            for node in nodes.values()
            for dest in node.switch_commands
        ):
            return ("in process",)
        op_id, params = cli.dispatch_args(nodes, args)
        return ("ok", op_id, params)
    except cli.CliUsageError as exc:
        return ("usage", str(exc))
    except DispatchError as exc:
        return ("error", exc.as_dict())


def outcome_thin(argv: list[str]) -> tuple[Any, ...]:
    parser, nodes = thin.build_parser(SNAPSHOT, argv[0])
    try:
        args = parser.parse_args(argv)
        op, params = thin.resolve(SNAPSHOT, nodes, args)
        return ("ok", op["id"], params)
    except thin.Fallback:
        return ("in process",)
    except thin.CliUsageError as exc:
        return ("usage", str(exc))
    except DispatchError as exc:
        return ("error", exc.as_dict())


@pytest.mark.parametrize("op_id", sorted(SNAPSHOT["ops"]))
def test_it_yields_the_same_params_or_error_for_every_op(
    op_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for argv in samples_for(SNAPSHOT["ops"][op_id]):
        full = outcome_full(argv, monkeypatch)
        assert outcome_thin(argv) == full, argv


def test_it_answers_unknown_commands_with_the_same_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full_parser, _ = cli.build_parser()
    thin_parser, _ = thin.build_parser(SNAPSHOT)
    for argv in (["nope"], ["goal", "nope"], ["--bogus"]):
        with pytest.raises(cli.CliUsageError) as full:
            full_parser.parse_args(argv)
        with pytest.raises(thin.CliUsageError) as rebuilt:
            thin_parser.parse_args(argv)
        assert str(rebuilt.value) == str(full.value)


def test_it_runs_every_op_but_a_launch_thin_and_knows_its_file_fields() -> None:
    ops = SNAPSHOT["ops"]
    # `new` may run the setup script and create files in the caller's tree:
    # with the caller's environment and umask, in process.
    assert {i for i, op in ops.items() if not op["thin"]} == {"new"}
    assert ops["send"]["intent"] == "write" and ops["send"]["files"] == {}
    assert ops["new"]["files"]["input_file"] == {"if_exists": False, "stdin": True}
    assert ops["new"]["files"]["packet"] == {"if_exists": True, "stdin": False}
    assert ops["archive"]["summary"] == load_ops()["archive"].summary


def test_it_sends_the_callers_cwd_where_a_handler_would_take_its_own() -> None:
    # caller_cwd() reads the process's cwd for the CLI surface, which over
    # REST is the daemon's: every handler calling it must be listed.
    calling = {
        op.id
        for op in load_ops().values()
        if "caller_cwd(" in inspect.getsource(op.handler)
    }
    assert calling == CALLER_CWD_OPS
    assert {i for i, op in SNAPSHOT["ops"].items() if op["caller_cwd"]} == calling


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "needle", "--directory", "."],
        ["history", "--cwd", "sub"],
        ["new", "--dry-run", "--name", "x", "--cwd", "."],
        ["new", "--name", "x", "--cwd", "."],
        ["new", "--name", "x", "--text", "hi"],
        ["lane", "fork", "lane", "--name", "x", "--cwd", "."],
        ["watch", "lane", "--follow"],
        ["token", "list"],
    ],
)
def test_it_leaves_calls_that_depend_on_the_caller_in_process(
    argv: list[str],
) -> None:
    assert isinstance(thin_client.parse(SNAPSHOT, argv), thin_client.Declined)


@pytest.mark.parametrize(
    ("argv", "op_id"),
    [
        (["send", "lane", "hello"], "send"),
        (["send", "lane", "hello", "--queue"], "send"),
        (["stop", "lane"], "stop"),
        (["new", "--dry-run", "--name", "x"], "new_plan"),
        (["archive", "lane", "--yes"], "archive"),
        (["goal", "set", "lane", "ship it"], "goal-set"),
    ],
)
def test_it_runs_writes_thin(argv: list[str], op_id: str) -> None:
    parsed = thin_client.parse(SNAPSHOT, argv)
    assert isinstance(parsed, tuple) and parsed[0]["id"] == op_id


def test_it_runs_plain_reads_thin() -> None:
    parsed = thin_client.parse(SNAPSHOT, ["search", "needle", "--limit", "3"])
    assert isinstance(parsed, tuple)
    assert (parsed[0]["id"], parsed[1]) == ("search", {"query": "needle", "limit": 3})


def test_it_names_the_snapshot_by_its_content() -> None:
    again = build_snapshot("test")
    assert again["hash"] == SNAPSHOT["hash"]
    assert build_snapshot("other")["hash"] != SNAPSHOT["hash"]


def schema_outcome(run: Any, words: list[str]) -> tuple[Any, ...]:
    try:
        return ("ok", run(argparse.Namespace(command_words=words)))
    except DispatchError as exc:
        return ("error", exc.as_dict())


@pytest.mark.parametrize("op_id", sorted(SNAPSHOT["ops"]))
def test_it_prints_the_same_schema_from_the_snapshot(op_id: str) -> None:
    op = SNAPSHOT["ops"][op_id]
    docs = SNAPSHOT["docs"]

    def from_snapshot(args: Any) -> Any:
        return thin_docs.schema(SNAPSHOT, docs, args)

    for words in (op["cli"].split(), [op_id], [op["cli"], "--json"]):
        assert schema_outcome(from_snapshot, words) == schema_outcome(
            tools.schema, words
        )


def test_it_refuses_the_same_unknown_schemas() -> None:
    def from_snapshot(args: Any) -> Any:
        return thin_docs.schema(SNAPSHOT, SNAPSHOT["docs"], args)

    for words in ([], ["nope"], ["goal", "nope"]):
        thin_says = schema_outcome(from_snapshot, words)
        assert thin_says[0] == "error"
        assert thin_says == schema_outcome(tools.schema, words)


@pytest.mark.parametrize("shell", tools.SHELLS)
def test_it_prints_the_same_completion_from_the_snapshot(shell: str) -> None:
    tree = SNAPSHOT["docs"]["completion"]
    assert completion_script(shell, tree) == completion_script(
        shell, tools.command_tree()
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("flags", [[], ["--no-interactive"], ["--yes"]])
@pytest.mark.parametrize("answer", ["y", "yes", "n", ""])
@pytest.mark.parametrize("terminal", [True, False])
def test_it_confirms_a_destroy_as_in_process(
    flags: list[str], answer: str, terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["archive", "@old", *flags]

    def outcome(confirm: Any) -> tuple[Any, ...]:
        prompts: list[str] = []

        def ask(prompt: str) -> str:
            prompts.append(prompt)
            return answer

        monkeypatch.setattr("builtins.input", ask)
        monkeypatch.setattr(sys, "stdin", Terminal() if terminal else io.StringIO())
        try:
            confirm()
            return ("ok", prompts)
        except DispatchError as exc:
            return ("error", exc.as_dict(), prompts)

    parser, nodes = cli.build_parser("archive")
    args = parser.parse_args(argv)
    op, params = cli.chosen_op_params(nodes[("archive",)], args)
    parsed = thin_client.parse(SNAPSHOT, argv)
    assert isinstance(parsed, tuple)
    thin_op, thin_params, thin_args = parsed
    full = outcome(lambda: cli.confirm_destroy(op, args, params))
    kept = thin_inputs.Kept()
    rebuilt = outcome(
        lambda: thin_inputs.confirm_destroy(thin_op, thin_args, thin_params, kept)
    )
    assert rebuilt == full
    if terminal and not flags:
        assert full[-1] == [f"{op.summary} (@old)? [y/N] "]


@pytest.mark.parametrize(
    "flags",
    [
        ["--goal-file", "goal.md", "--packet", "saved-name"],
        ["--packet", "goal.md", "--base-file", "~/base.md"],
        ["--input-file", "-"],
        ["--input-file", "-", "--goal-file", "-"],
    ],
)
def test_it_reads_file_inputs_as_in_process(
    flags: list[str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "goal.md").write_text("the goal")
    argv = ["new", "--dry-run", "--name", "x", *flags]

    def outcome(read: Any) -> tuple[Any, ...]:
        stdin = io.TextIOWrapper(io.BytesIO(b"piped"), encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", stdin)
        try:
            return ("ok", read())
        except DispatchError as exc:
            return ("error", exc.as_dict())

    parser, nodes = cli.build_parser("new")
    op, params = cli.chosen_op_params(nodes[("new",)], parser.parse_args(argv))
    parsed = thin_client.parse(SNAPSHOT, argv)
    assert isinstance(parsed, tuple)
    thin_op, thin_params, _args = parsed
    full = outcome(lambda: cli.file_params(op, dict(params)))

    def thin_read() -> dict[str, Any]:
        thin_inputs.file_params(thin_op, thin_params, thin_inputs.Kept())
        return thin_params

    rebuilt = outcome(thin_read)
    if full[0] == "ok":
        # The handler would take the process's cwd; the thin client sends it.
        full = ("ok", {**full[1], "cwd": str(tmp_path)})
    assert rebuilt == full
