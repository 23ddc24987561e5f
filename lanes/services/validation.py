"""Checks on user input that run before any side effect: cwd, names, ids, settings.

Each check raises a ValidationError naming the field and the fix, so a bad
value is refused before a Codex thread is started or a row is written. The
launch dry-run calls the same functions.
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Literal, get_args

from dispatchsite.core.errors import AppServerError, NotFoundError, ValidationError
from dispatchsite.core.origin import Origin
from lanes.appserver.protocol import is_thread_id
from lanes.catalog import catalog_row, model_catalog
from lanes.models import Lane, ModelCatalogEntry

CWD_MAX = 1024
NAME_MAX = 200
# What codex 0.169 accepts as a plain approval policy (AskForApproval); the
# `granular` object form is not offered through dispatch.
ApprovalPolicy = Literal["untrusted", "on-request", "never"]
APPROVAL_POLICIES: tuple[str, ...] = get_args(ApprovalPolicy)
# Reasoning efforts are model-defined in codex 0.169 (any non-empty string a
# model advertises); these are the ones its bundled models use, accepted when
# the model catalog has nothing to say about the chosen model.
STANDARD_EFFORTS: tuple[str, ...] = (
    "none",
    "minimal",
    "low",
    "medium",
    "high",
    "xhigh",
)
EFFORT_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
# Bidi embeddings, overrides, isolates and marks: they make a name read
# differently from what it is ("Trojan Source").
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
LINE_SEPARATORS = frozenset("\u2028\u2029\x85")
# A lane ref: "0" + five base58 characters (lanes.models.ref_payload + mixer).
REF_SHAPE = re.compile(r"0[1-9A-HJ-NP-Za-km-z]{5}")


def clean_cwd(cwd: str, *, field: str = "cwd") -> str:
    """An absolute path of an existing directory, normalised; or ValidationError."""
    if "\x00" in cwd:
        raise ValidationError(
            f"{field} contains a NUL byte", hint="pass a directory path"
        )
    if not cwd.strip():
        raise ValidationError(f"{field} is empty", hint="pass a directory path")
    if len(cwd) > CWD_MAX:
        raise ValidationError(
            f"{field} is {len(cwd)} characters long; at most {CWD_MAX} are accepted",
            hint="use a shorter path (a symlink to the directory works)",
        )
    if not os.path.isabs(cwd):
        raise ValidationError(
            f"{field} must be an absolute path, not {cwd!r}",
            hint="pass the full path (the CLI resolves a relative one for you)",
        )
    path = os.path.normpath(cwd)
    if not os.path.exists(path):
        raise ValidationError(
            f"{field} {path!r} does not exist", hint="create it, or pass another one"
        )
    if not os.path.isdir(path):
        raise ValidationError(
            f"{field} {path!r} is not a directory", hint="pass a directory"
        )
    return path


def name_problem(name: str) -> str:
    """Why `name` cannot be shown as a lane name, or "" when it can."""
    for char in name:
        if char in BIDI_CONTROLS:
            return f"contains a bidirectional control character (U+{ord(char):04X})"
        if unicodedata.category(char) == "Cc" or char in LINE_SEPARATORS:
            return f"contains a control character (U+{ord(char):04X})"
    return ""


def clean_name(name: str, *, field: str = "name") -> str:
    """A lane name as given on the CLI: '@x' and 'x' name the same lane.

    Refused: empty, too long, control or bidi characters, and names that
    would read as another selector (a ref, a thread id, a second '@').
    """
    problem = name_problem(name)
    if problem:
        raise ValidationError(
            f"the lane {field} {problem}",
            hint="use printable text without control or direction characters",
        )
    cleaned = name.strip().removeprefix("@").strip()
    if not cleaned:
        raise ValidationError(f"the lane {field} must not be empty", hint="pass a name")
    if len(cleaned) > NAME_MAX:
        raise ValidationError(
            f"the lane {field} is longer than {NAME_MAX} characters",
            hint="choose a shorter name",
        )
    if cleaned.startswith("@"):
        raise ValidationError(
            f"the lane {field} {name!r} would read as the handle {cleaned!r}",
            hint="drop the leading '@' characters",
        )
    if REF_SHAPE.fullmatch(cleaned) or is_thread_id(cleaned):
        raise ValidationError(
            f"the lane {field} {cleaned!r} is shaped like a lane ref or thread id, "
            "so selectors would not find the lane by it",
            hint="choose a name that is not a ref or a thread id",
        )
    clash = Lane.objects.filter(ref=cleaned).first() or (
        Lane.objects.filter(thread_id=cleaned).first()
    )
    if clash is not None:
        raise ValidationError(
            f"the lane {field} {cleaned!r} is the ref or id of lane @{clash.title}",
            hint="choose another name",
        )
    return cleaned


def require_thread_id(text: str, *, what: str) -> str:
    """`text` as a Codex thread id, or a ValidationError (for verbs that need one)."""
    thread_id = text.strip()
    if not is_thread_id(thread_id):
        raise ValidationError(
            f"{what} needs a full Codex thread id (a UUID), not {thread_id!r}",
            hint="find ids with `dispatch list --unmanaged`",
        )
    return thread_id


def unmanaged_thread_check(thread_id: str, *, hint: str) -> None:
    """A selector that named no lane must be a thread id to go on to codex:
    anything else is a lane name that matched nothing."""
    if not is_thread_id(thread_id):
        raise NotFoundError(
            f"no managed lane matches {thread_id!r}, and it is not a Codex "
            "thread id (a UUID)",
            hint=hint,
        )


def clean_effort(effort: str, *, supported: list[str] | None) -> str:
    """A reasoning effort the model advertises (`supported`), or a standard one
    when the catalog does not know the model."""
    choices = supported or list(STANDARD_EFFORTS)
    if effort not in choices:
        source = "the model advertises" if supported else "codex models use"
        raise ValidationError(
            f"effort {effort!r} is not one {source}: {', '.join(choices)}",
            hint="pick one of those (`dispatch models` lists each model's efforts)",
        )
    return effort


def cached_efforts(model: str | None) -> list[str] | None:
    """The efforts the catalog cache lists for `model` (the default model when
    None); None when the cache does not know it."""
    entries = ModelCatalogEntry.objects.all()
    if model:
        entries = entries.filter(model_id=model)
    for entry in entries:
        if model or (entry.data or {}).get("isDefault"):
            efforts = catalog_row(entry)["supported_reasoning_efforts"]
            return [str(e) for e in efforts] or None
    return None


def lane_effort_check(*, host: str, model: str | None, effort: str) -> str:
    """Refuse an effort the chosen model does not offer, before thread/start.

    The cached catalog answers first; an effort outside the standard ones
    on a model the cache does not know gets one live catalog read.
    """
    supported = cached_efforts(model)
    if supported is None and effort not in STANDARD_EFFORTS:
        try:
            model_catalog(host=host, refresh=True, include_hidden=True)
        except AppServerError:
            pass  # no catalog to ask: only the standard efforts pass
        supported = cached_efforts(model)
    return clean_effort(effort, supported=supported)


def thread_settings_check(
    *,
    host: str,
    cwd: str | None,
    model: str | None,
    approval_policy: str | None,
    effort: str | None,
) -> str | None:
    """Check what thread/start or thread/fork would be given; return the clean
    cwd. Runs before the thread exists, so nothing is left half-made."""
    if approval_policy is not None and approval_policy not in APPROVAL_POLICIES:
        raise ValidationError(
            f"approval_policy {approval_policy!r} is not one of "
            + ", ".join(APPROVAL_POLICIES),
            hint="pick one of those",
        )
    if effort is not None:
        lane_effort_check(host=host, model=model, effort=effort)
    return clean_cwd(cwd) if cwd is not None else None


def caller_cwd(cwd: str | None, *, origin: Origin) -> str:
    """The directory a new thread runs in: the CLI's own by default; REST and
    MCP callers name it (the daemon's directory means nothing to them)."""
    if cwd is not None:
        return cwd
    if origin.surface == "cli":
        return os.getcwd()
    raise ValidationError(
        "cwd is required over REST and MCP",
        hint="pass the absolute path of the directory the lane works in",
    )
