#!/usr/bin/env python3
"""A stand-in for `codex app-server` (0.169) over stdio, stdlib only.

Run it like codex: `python tests/fakes/fake_appserver.py app-server`. It speaks
the same line-delimited JSON-RPC (see /work/shared/reference/app-server-protocol.md)
for a useful subset of methods, keeps threads in memory and, when $CODEX_HOME is
set, persists them to $CODEX_HOME/fake_appserver_state.json so a restarted fake
can list and `thread/resume` them.

Knobs (environment):
  FAKE_APPSERVER_MODE        normal | crash_after_init | crash_on_turn | hang |
                             garbage | approval | invalid_config | firehose
  FAKE_APPSERVER_FIREHOSE_LANES / _RATE / _SECONDS / _START   firehose mode
                             (benchmarks): after initialize, emit
                             `item/agentMessage/delta` on LANES threads
                             `firehose-000`... at RATE per thread per second
                             for SECONDS, each with a wall-clock `sentAt`;
                             if _START names a file, wait until it exists
  FAKE_APPSERVER_TURN_DELAY  seconds before each agent delta (default 0), so a
                             turn can be steered or interrupted
  FAKE_APPSERVER_LOG         append every received line, as JSON, to this file
  FAKE_APPSERVER_IGNORE_SIGTERM=1   SIGTERM does not stop it
  FAKE_APPSERVER_IGNORE_EOF=1       stdin EOF does not stop it (hang implies it)
  FAKE_APPSERVER_MAX_GOAL_TURNS     safety cap on goal continuations (default 50)

A prompt containing `[[slow:SEC]]` streams 20 deltas SEC apart (as the mock
Responses server does), whatever FAKE_APPSERVER_TURN_DELAY says. A prompt
containing `[[shell:CMD]]` runs CMD with /bin/sh before the reply, as a
`commandExecution` item (item/started, item/commandExecution/outputDelta,
item/completed with aggregatedOutput and exitCode), like codex's exec tool.
`thread/search` and `thread/searchOccurrences` match item text and previews
case-insensitively (codex's full-text search, approximated).

Test-only methods: `fake/sleep {seconds}` answers late (an in-flight request),
`fake/emit {method, params}` emits any notification, and
`fake/serverRequest {method, params}` sends a server->client request and
returns the client's reply object ({"result": ...} or {"error": ...}).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]

INVALID_REQUEST = -32600
TOKENS_PER_TURN = 110
SLOW_DIRECTIVE = re.compile(r"\[\[slow:([0-9.]+)\]\]")
SHELL_DIRECTIVE = re.compile(r"\[\[shell:(.+?)\]\]", re.DOTALL)
SHELL_TIMEOUT = 30.0
SEARCH_SNIPPET_CHARS = 80
DELTA_CHUNKS = 4
INVALID_CONFIG_SUMMARY = "Invalid configuration; using defaults."
STATE_FILE_NAME = "fake_appserver_state.json"
VERSION = "0.169.0"

KNOWN_METHODS = (
    "initialize",
    "thread/start",
    "thread/resume",
    "thread/read",
    "thread/list",
    "thread/loaded/list",
    "thread/turns/list",
    "thread/items/list",
    "thread/search",
    "thread/searchOccurrences",
    "thread/name/set",
    "thread/archive",
    "thread/unarchive",
    "thread/fork",
    "thread/compact/start",
    "thread/inject_items",
    "thread/goal/get",
    "thread/goal/set",
    "thread/goal/clear",
    "turn/start",
    "turn/steer",
    "turn/interrupt",
    "model/list",
    "config/read",
    "account/read",
    "fake/sleep",
    "fake/emit",
    "fake/serverRequest",
)


class RpcFailure(Exception):
    def __init__(self, message: str, code: int = INVALID_REQUEST) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ServerRequestSlot:
    """A server->client request waiting for the client's reply."""

    def __init__(self) -> None:
        self.answered = threading.Event()
        self.reply: JsonDict = {}


class TurnRun:
    """The live part of an in-progress turn."""

    def __init__(self, thread_id: str, turn: JsonDict, *, goal_turn: bool) -> None:
        self.thread_id = thread_id
        self.turn = turn
        self.goal_turn = goal_turn
        self.started_monotonic = time.monotonic()
        self.interrupted = threading.Event()
        self.wake = threading.Event()
        self.steers: list[tuple[str, str | None]] = []
        self.waiting_on_approval = False
        self.pending_request_id: int | None = None


def now_s() -> int:
    return int(time.time())


def now_ms() -> int:
    return int(time.time() * 1000)


def text_of(inputs: Any) -> str:
    if not isinstance(inputs, list):
        raise RpcFailure("Invalid request: missing field `input`")
    parts = [str(i.get("text", "")) for i in inputs if isinstance(i, dict)]
    return "\n".join(p for p in parts if p)


def require(params: JsonDict, field: str) -> Any:
    if field not in params or params[field] is None:
        raise RpcFailure(f"Invalid request: missing field `{field}`")
    return params[field]


def page(rows: list[Any], params: JsonDict) -> tuple[list[Any], str | None]:
    """Offset pagination behind an opaque-looking cursor, like codex's."""
    start = 0
    cursor = params.get("cursor")
    if cursor:
        try:
            start = int(json.loads(cursor)["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RpcFailure(f"invalid cursor: {cursor}") from exc
    limit = params.get("limit") or len(rows) or 1
    chunk = rows[start : start + int(limit)]
    more = start + int(limit) < len(rows)
    next_cursor = json.dumps({"offset": start + int(limit)}) if more else None
    return chunk, next_cursor


class FakeAppServer:
    def __init__(self) -> None:
        self.mode = os.environ.get("FAKE_APPSERVER_MODE", "normal")
        self.turn_delay = float(os.environ.get("FAKE_APPSERVER_TURN_DELAY", "0") or 0)
        self.max_goal_turns = int(os.environ.get("FAKE_APPSERVER_MAX_GOAL_TURNS", "50"))
        log_path = os.environ.get("FAKE_APPSERVER_LOG")
        self.log_path = Path(log_path) if log_path else None
        codex_home = os.environ.get("CODEX_HOME")
        self.codex_home = Path(codex_home) if codex_home else None

        self.lock = threading.RLock()
        self.out_lock = threading.Lock()
        self.initialized = False
        self.client_name = "unknown"
        self.opt_out: set[str] = set()
        self.reply_counter = 0
        self.next_server_request_id = 0
        self.server_requests: dict[int, ServerRequestSlot] = {}
        self.threads: dict[str, JsonDict] = {}
        self.loaded: set[str] = set()
        self.active: dict[str, TurnRun] = {}
        self.goal_turns_run: dict[str, int] = {}
        self._load_state()

    # -- output --------------------------------------------------------------

    def write(self, message: JsonDict) -> None:
        line = json.dumps(message, separators=(",", ":"))
        with self.out_lock:
            if self.mode == "garbage":
                sys.stdout.write("this is not json {\n")
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def emit(self, method: str, params: JsonDict) -> None:
        if method in self.opt_out:
            return
        self.write({"method": method, "params": params, "emittedAtMs": now_ms()})

    def stderr(self, text: str) -> None:
        sys.stderr.write(f"fake_appserver: {text}\n")
        sys.stderr.flush()

    # -- main loop -----------------------------------------------------------

    def serve(self) -> int:
        while True:
            raw = sys.stdin.buffer.readline()
            if not raw:
                break
            self._log_received(raw)
            try:
                message = json.loads(raw)
            except ValueError:
                self.stderr(f"ignoring non-JSON input: {raw[:80]!r}")
                continue
            if not isinstance(message, dict):
                continue
            if self.mode == "hang":
                continue
            self.handle(message)
        if self.mode == "hang" or os.environ.get("FAKE_APPSERVER_IGNORE_EOF") == "1":
            while True:  # only a signal ends it
                time.sleep(3600)
        return 0

    def handle(self, message: JsonDict) -> None:
        method = message.get("method")
        if method is None:
            self._take_client_reply(message)
            return
        if "id" not in message:
            return  # client notifications (`initialized`) need no answer
        request_id = message["id"]
        params = message.get("params") or {}
        after_reply: list[Callable[[], None]] = []
        try:
            if "params" not in message:  # 0.169 insists, even for `{}`
                raise RpcFailure("Invalid request: missing field `params`")
            result = self.dispatch(str(method), params, after_reply)
        except RpcFailure as failure:
            error = {"code": failure.code, "message": failure.message}
            self.write({"error": error, "id": request_id})
            return
        if result is _DEFERRED:
            self._answer_later(request_id, str(method), params)
            return
        # codex answers first, then emits the notifications the call caused.
        self.write({"id": request_id, "result": result})
        for action in after_reply:
            action()
        if method == "initialize":
            self._after_initialize()

    def dispatch(
        self, method: str, params: JsonDict, after_reply: list[Callable[[], None]]
    ) -> Any:
        if method not in KNOWN_METHODS:
            expected = ", ".join(f"`{m}`" for m in KNOWN_METHODS)
            raise RpcFailure(
                f"Invalid request: unknown variant `{method}`, "
                f"expected one of {expected}"
            )
        if method == "initialize":
            return self.initialize(params)
        if not self.initialized:
            raise RpcFailure("Not initialized")
        if method in ("fake/sleep", "fake/serverRequest"):
            return _DEFERRED
        handler = getattr(self, "m_" + method.replace("/", "_"))
        with self.lock:
            return handler(params, after_reply)

    def _answer_later(self, request_id: Any, method: str, params: JsonDict) -> None:
        def run() -> None:
            if method == "fake/sleep":
                seconds = float(params.get("seconds", 1))
                time.sleep(seconds)
                self.write({"id": request_id, "result": {"slept": seconds}})
                return
            _, slot = self.send_server_request(
                str(params.get("method", "fake/ask")), params.get("params") or {}
            )
            slot.answered.wait()
            self.write({"id": request_id, "result": slot.reply})

        threading.Thread(target=run, daemon=True).start()

    def _log_received(self, raw: bytes) -> None:
        if self.log_path is None:
            return
        try:
            entry: Any = json.loads(raw)
        except ValueError:
            entry = {"raw": raw.decode("utf-8", "replace").rstrip("\n")}
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    # -- server -> client requests ---------------------------------------------

    def send_server_request(
        self, method: str, params: JsonDict
    ) -> tuple[int, ServerRequestSlot]:
        with self.lock:
            request_id = self.next_server_request_id
            self.next_server_request_id += 1
            slot = ServerRequestSlot()
            self.server_requests[request_id] = slot
        self.write({"id": request_id, "method": method, "params": params})
        return request_id, slot

    def _take_client_reply(self, message: JsonDict) -> None:
        with self.lock:
            slot = self.server_requests.pop(message.get("id", -1), None)
        if slot is None:
            self.stderr(f"reply to unknown server request {message.get('id')!r}")
            return
        slot.reply = {k: v for k, v in message.items() if k in ("result", "error")}
        slot.answered.set()

    # -- initialize ------------------------------------------------------------

    def initialize(self, params: JsonDict) -> JsonDict:
        if self.initialized:
            raise RpcFailure("Already initialized")
        info = require(params, "clientInfo")
        self.client_name = str(require(info, "name"))
        require(info, "version")
        capabilities = params.get("capabilities") or {}
        self.opt_out = set(capabilities.get("optOutNotificationMethods") or [])
        self.initialized = True
        return {
            "userAgent": (
                f"{self.client_name}/{VERSION} (Fake OS; x86_64) fake "
                f"({self.client_name}; {info.get('version')})"
            ),
            "codexHome": str(self.codex_home or ""),
            "platformFamily": "unix",
            "platformOs": "linux",
        }

    def _after_initialize(self) -> None:
        if self.mode == "crash_after_init":
            self.stderr("crashing right after initialize (crash_after_init)")
            os._exit(1)
        if self.mode == "invalid_config":
            config_path = str((self.codex_home or Path("~/.codex")) / "config.toml")
            self.emit(
                "configWarning",
                {
                    "summary": INVALID_CONFIG_SUMMARY,
                    "details": f"{config_path}:1:9: fake invalid configuration",
                    "path": config_path,
                },
            )
        self.emit("remoteControl/status/changed", {"status": "disabled"})
        if self.mode == "firehose":
            threading.Thread(target=self._firehose, daemon=True).start()

    def _firehose(self) -> None:
        """Deltas at a fixed rate on synthetic threads, stamped for latency."""
        lanes = int(os.environ.get("FAKE_APPSERVER_FIREHOSE_LANES", "20"))
        rate = float(os.environ.get("FAKE_APPSERVER_FIREHOSE_RATE", "100"))
        seconds = float(os.environ.get("FAKE_APPSERVER_FIREHOSE_SECONDS", "10"))
        start = os.environ.get("FAKE_APPSERVER_FIREHOSE_START")
        while start and not os.path.exists(start):
            time.sleep(0.01)
        total = int(lanes * rate * seconds)
        # Threads take turns, so each sees an even RATE, not bursts.
        interval = 1.0 / (lanes * rate)
        began = time.monotonic()
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - began) / interval) + 1)
            while sent < due:
                lane, n = sent % lanes, sent // lanes
                params = {
                    "threadId": f"firehose-{lane:03d}",
                    "turnId": "firehose",
                    "itemId": f"firehose-{lane:03d}",
                    "delta": "x",
                    "n": n,
                    "sentAt": time.time(),
                }
                self.write({"method": "item/agentMessage/delta", "params": params})
                sent += 1
            time.sleep(max(0.0, began + sent * interval - time.monotonic()))

    # -- threads ---------------------------------------------------------------

    def new_thread(self, params: JsonDict) -> JsonDict:
        thread_id = str(uuid.uuid4())
        ephemeral = bool(params.get("ephemeral"))
        path = None
        if not ephemeral and self.codex_home is not None:
            path = str(self.codex_home / "sessions" / f"rollout-{thread_id}.jsonl")
        created = now_s()
        return {
            "id": thread_id,
            "sessionId": thread_id,
            "path": path,
            "ephemeral": ephemeral,
            "status": {"type": "idle"},
            "source": "vscode",
            "cwd": params.get("cwd") or os.getcwd(),
            "model": params.get("model") or "mock-model",
            "modelProvider": "mock",
            "preview": "",
            "name": None,
            "createdAt": created,
            "updatedAt": created,
            "forkedFromId": None,
            "originator": self.client_name,
            "archived": False,
            "goal": None,
            "injectedItems": [],
            "tokensUsed": 0,
            "turns": [],
        }

    def thread(self, thread_id: Any, *, loaded: bool = False) -> JsonDict:
        if str(thread_id) not in self.threads:
            self._adopt_foreign_threads()
        record = self.threads.get(str(thread_id))
        if record is None or (loaded and thread_id not in self.loaded):
            raise RpcFailure(f"thread not found: {thread_id}")
        return record

    def public_thread(self, record: JsonDict, *, include_turns: bool) -> JsonDict:
        hidden = ("archived", "goal", "injectedItems", "tokensUsed", "turns")
        public = {k: v for k, v in record.items() if k not in hidden}
        public["status"] = self._status(record["id"])
        turns = record["turns"] if include_turns else []
        public["turns"] = [public_turn(t, "full") for t in turns]
        return public

    def _status(self, thread_id: str) -> JsonDict:
        run = self.active.get(thread_id)
        if run is None:
            return {"type": "idle"}
        flags = ["waitingOnApproval"] if run.waiting_on_approval else []
        return {"type": "active", "activeFlags": flags}

    def thread_response(self, record: JsonDict, *, include_turns: bool) -> JsonDict:
        return {
            "thread": self.public_thread(record, include_turns=include_turns),
            "model": record["model"],
            "modelProvider": "mock",
            "cwd": record["cwd"],
            "approvalPolicy": "untrusted" if self.mode == "approval" else "never",
            "approvalsReviewer": "user",
            "sandbox": {"type": "readOnly", "networkAccess": False},
            "reasoningEffort": None,
        }

    def m_thread_start(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        record = self.new_thread(params)
        self.threads[record["id"]] = record
        self.loaded.add(record["id"])
        self._save_state()
        public = self.public_thread(record, include_turns=False)
        after.append(lambda: self.emit("thread/started", {"thread": public}))
        return self.thread_response(record, include_turns=False)

    def m_thread_resume(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        record = self.thread(require(params, "threadId"))
        self.loaded.add(record["id"])
        response = self.thread_response(
            record, include_turns=not params.get("excludeTurns")
        )
        response["initialTurnsPage"] = None
        return response

    def m_thread_read(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        record = self.thread(require(params, "threadId"))
        include = bool(params.get("includeTurns"))
        if include:
            summary = "Full-history hydration is deprecated; use thread/turns/list."
            after.append(lambda: self.emit("deprecationNotice", {"summary": summary}))
        return {"thread": self.public_thread(record, include_turns=include)}

    def m_thread_list(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        self._adopt_foreign_threads()
        archived = bool(params.get("archived"))
        key = "updatedAt" if params.get("sortKey") == "updated_at" else "createdAt"
        term = (params.get("searchTerm") or "").lower()
        rows = [
            t
            for t in self.threads.values()
            if not t["ephemeral"]
            and t["archived"] == archived
            and (not params.get("cwd") or t["cwd"] == params["cwd"])
            and (not term or term in (t["preview"] + (t["name"] or "")).lower())
        ]
        rows.sort(key=lambda t: t[key], reverse=params.get("sortDirection") != "asc")
        chunk, next_cursor = page(rows, params)
        return {
            "data": [self.public_thread(t, include_turns=False) for t in chunk],
            "nextCursor": next_cursor,
            "backwardsCursor": None,
        }

    def m_thread_loaded_list(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        return {"data": sorted(self.loaded), "nextCursor": None}

    def m_thread_turns_list(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        turns = list(record["turns"])
        if params.get("sortDirection", "desc") != "asc":
            turns.reverse()
        chunk, next_cursor = page(turns, params)
        view = params.get("itemsView") or "summary"
        data = [public_turn(t, view) for t in chunk]
        return {"data": data, "nextCursor": next_cursor, "backwardsCursor": None}

    def m_thread_items_list(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        rows = [
            {
                "turnId": turn["id"],
                "item": public_item(item),
                "startedAtMs": item.get("_startedAtMs"),
                "completedAtMs": item.get("_completedAtMs"),
            }
            for turn in record["turns"]
            if not params.get("turnId") or turn["id"] == params["turnId"]
            for item in turn["items"]
        ]
        if params.get("sortDirection", "desc") != "asc":
            rows.reverse()
        chunk, next_cursor = page(rows, params)
        return {"data": chunk, "nextCursor": next_cursor, "backwardsCursor": None}

    def _search_hits(self, record: JsonDict, term: str) -> list[JsonDict]:
        hits = []
        for turn in record["turns"]:
            for item in turn["items"]:
                text = item_search_text(item)
                at = text.lower().find(term)
                if at >= 0:
                    start = max(0, at - SEARCH_SNIPPET_CHARS // 2)
                    snippet = text[start : start + SEARCH_SNIPPET_CHARS]
                    hits.append(
                        {
                            "turnId": turn["id"],
                            "itemId": item["id"],
                            "snippet": ("..." if start else "") + snippet,
                            "snippetMatchRange": {
                                "start": at - start,
                                "end": at - start + len(term),
                            },
                        }
                    )
        return hits

    def m_thread_search(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        term = str(require(params, "searchTerm")).lower()
        archived = bool(params.get("archived"))
        self._adopt_foreign_threads()
        rows = []
        for record in sorted(
            self.threads.values(), key=lambda t: t["updatedAt"], reverse=True
        ):
            if record["ephemeral"] or record["archived"] != archived:
                continue
            hits = self._search_hits(record, term)
            if hits or term in (record["preview"] + (record["name"] or "")).lower():
                rows.append(
                    {
                        "thread": self.public_thread(record, include_turns=False),
                        "snippet": hits[0]["snippet"] if hits else record["preview"],
                    }
                )
        chunk, next_cursor = page(rows, params)
        return {"data": chunk, "nextCursor": next_cursor, "backwardsCursor": None}

    def m_thread_searchOccurrences(  # noqa: N802 (the method's wire name)
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        term = str(require(params, "searchTerm")).lower()
        return {"data": self._search_hits(record, term), "nextCursor": None}

    def m_thread_name_set(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        record["name"] = str(require(params, "name"))
        record["updatedAt"] = now_s()
        self._save_state()
        update = {"threadId": record["id"], "threadName": record["name"]}
        after.append(lambda: self.emit("thread/name/updated", update))
        return {}

    def m_thread_archive(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        record["archived"] = True
        self.loaded.discard(record["id"])
        self._save_state()
        after.append(lambda: self.emit("thread/archived", {"threadId": record["id"]}))
        return {}

    def m_thread_unarchive(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        record["archived"] = False
        self._save_state()
        after.append(lambda: self.emit("thread/unarchived", {"threadId": record["id"]}))
        return {"thread": self.public_thread(record, include_turns=False)}

    def m_thread_fork(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        source = self.thread(require(params, "threadId"))
        exclude = bool(params.get("excludeTurns"))
        if params.get("ephemeral") and not exclude:
            raise RpcFailure(
                "ephemeral paginated thread/fork requires 'excludeTurns: true'"
            )
        record = self.new_thread(
            {"cwd": source["cwd"], "model": source["model"], **params}
        )
        record["forkedFromId"] = source["id"]
        record["preview"] = source["preview"]
        record["turns"] = json.loads(json.dumps(source["turns"]))
        self.threads[record["id"]] = record
        self.loaded.add(record["id"])
        self._save_state()
        public = self.public_thread(record, include_turns=False)
        after.append(lambda: self.emit("thread/started", {"thread": public}))
        return self.thread_response(record, include_turns=not exclude)

    def m_thread_compact_start(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"), loaded=True)
        if record["id"] in self.active:
            raise RpcFailure("thread already has an active turn")
        run = self._new_run(record, goal_turn=False)
        after.append(lambda: self._start_thread(self._run_compaction, run))
        return {}

    def m_thread_inject_items(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"), loaded=True)
        items = require(params, "items")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or "type" not in item:
                raise RpcFailure(
                    f"items[{index}] is not a valid response item: missing field `type`"
                )
        record["injectedItems"].extend(items)
        self._save_state()
        return {}

    # -- goals -----------------------------------------------------------------

    def m_thread_goal_get(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        return {"goal": self.thread(require(params, "threadId"))["goal"]}

    def m_thread_goal_set(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"), loaded=True)
        if record["ephemeral"]:
            raise RpcFailure(f"ephemeral thread does not support goals: {record['id']}")
        goal = record["goal"]
        stamp = now_s()
        if goal is None:
            goal = {
                "threadId": record["id"],
                "objective": str(require(params, "objective")),
                "status": "active",
                "tokenBudget": None,
                "tokensUsed": 0,
                "timeUsedSeconds": 0,
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            self.goal_turns_run[record["id"]] = 0
        was_limited = goal["status"] == "budgetLimited"
        for field in ("objective", "status", "tokenBudget"):
            if field in params:
                goal[field] = params[field]
        if was_limited and goal["status"] == "paused":
            goal["status"] = "budgetLimited"  # what 0.169 did
        goal["updatedAt"] = stamp
        record["goal"] = goal
        self._save_state()
        snapshot = dict(goal)
        update = {"threadId": record["id"], "turnId": None, "goal": snapshot}
        after.append(lambda: self.emit("thread/goal/updated", update))
        after.append(lambda: self._maybe_continue_goal(record["id"]))
        return {"goal": snapshot}

    def m_thread_goal_clear(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        record = self.thread(require(params, "threadId"))
        record["goal"] = None
        self._save_state()
        after.append(
            lambda: self.emit("thread/goal/cleared", {"threadId": record["id"]})
        )
        return {"cleared": True}

    def _maybe_continue_goal(self, thread_id: str) -> None:
        with self.lock:
            record = self.threads.get(thread_id)
            goal = record["goal"] if record else None
            if record is None or goal is None or goal["status"] != "active":
                return
            if thread_id in self.active or thread_id not in self.loaded:
                return
            budget = goal.get("tokenBudget")
            over_budget = budget is not None and goal["tokensUsed"] >= budget
            capped = self.goal_turns_run.get(thread_id, 0) >= self.max_goal_turns
            if over_budget or capped:
                goal["status"] = "budgetLimited"
                goal["updatedAt"] = now_s()
                self._save_state()
                update = {"threadId": thread_id, "turnId": None, "goal": dict(goal)}
                self.emit("thread/goal/updated", update)
                return
            self.goal_turns_run[thread_id] = self.goal_turns_run.get(thread_id, 0) + 1
            run = self._new_run(record, goal_turn=True)
        self._start_thread(self._run_turn, run)

    # -- turns -----------------------------------------------------------------

    def _new_run(self, record: JsonDict, *, goal_turn: bool) -> TurnRun:
        turn_id = str(uuid.uuid4())
        turn: JsonDict = {
            "id": turn_id,
            "rootTurnId": turn_id,
            "items": [],
            "itemsView": "notLoaded",
            "status": "inProgress",
            "error": None,
            "startedAt": now_s(),
            "completedAt": None,
            "durationMs": None,
        }
        run = TurnRun(record["id"], turn, goal_turn=goal_turn)
        self.active[record["id"]] = run
        return run

    def _start_thread(self, target: Callable[[TurnRun], None], run: TurnRun) -> None:
        threading.Thread(target=target, args=(run,), daemon=True).start()

    def m_turn_start(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        record = self.thread(require(params, "threadId"), loaded=True)
        text = text_of(require(params, "input"))
        client_id = params.get("clientUserMessageId")
        run = self.active.get(record["id"])
        if run is not None:
            # codex treats turn/start on a busy thread as a steer.
            self._steer(run, text, client_id)
            return {"turn": turn_header(run.turn)}
        if not record["preview"]:
            record["preview"] = text[:200]
        run = self._new_run(record, goal_turn=False)
        run.steers.append((text, client_id))
        after.append(lambda: self._start_thread(self._run_turn, run))
        return {"turn": turn_header(run.turn)}

    def m_turn_steer(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        thread_id = require(params, "threadId")
        expected = require(params, "expectedTurnId")
        text = text_of(require(params, "input"))
        run = self.active.get(thread_id)
        if run is None:
            raise RpcFailure("no active turn to steer")
        if run.turn["id"] != expected:
            raise RpcFailure(
                f"expected active turn id '{expected}' but found '{run.turn['id']}'"
            )
        self._steer(run, text, params.get("clientUserMessageId"))
        return {"turnId": run.turn["id"]}

    def m_turn_interrupt(
        self, params: JsonDict, after: list[Callable[[], None]]
    ) -> Any:
        thread_id = require(params, "threadId")
        turn_id = require(params, "turnId")
        run = self.active.get(thread_id)
        if run is None or run.turn["id"] != turn_id:
            raise RpcFailure("no active turn to interrupt")
        run.interrupted.set()
        run.wake.set()
        return {}

    def _steer(self, run: TurnRun, text: str, client_id: str | None) -> None:
        run.steers.append((text, client_id))
        run.wake.set()

    def _run_turn(self, run: TurnRun) -> None:
        thread_id = run.thread_id
        with self.lock:
            self.emit("thread/status/changed", self._status_params(thread_id))
            started = {"threadId": thread_id, "turn": turn_header(run.turn)}
            self.emit("turn/started", started)
        if run.goal_turn:
            with self.lock:
                objective = self.threads[thread_id]["goal"]["objective"]
            self._stream_reply(run, objective)
        while not run.interrupted.is_set():
            with self.lock:
                if not run.steers:
                    break
                text, client_id = run.steers.pop(0)
            self._user_message(run, text, client_id)
            if self.mode == "crash_on_turn":
                self._crash_mid_turn(run)
            if self.mode == "approval" and not self._ask_approval(run):
                break
            if run.interrupted.is_set():
                break
            shell = SHELL_DIRECTIVE.search(text)
            if shell:
                self._run_shell(run, shell.group(1).strip())
            self._stream_reply(run, text)
        interrupted = run.interrupted.is_set()
        self._finish_turn(run, "interrupted" if interrupted else "completed")

    def _user_message(self, run: TurnRun, text: str, client_id: str | None) -> None:
        item = {
            "type": "userMessage",
            "id": str(uuid.uuid4()),
            "clientId": client_id,
            "content": [{"type": "text", "text": text, "text_elements": []}],
        }
        with self.lock:
            self._item_started(run, item)
            self._item_completed(run, item)

    def _stream_reply(self, run: TurnRun, prompt: str) -> None:
        run.wake.clear()
        with self.lock:
            self.reply_counter += 1
            reply = f"fake reply #{self.reply_counter} to: {prompt}"
            item_id = f"msg_fake_{self.reply_counter}"
            item = {"type": "agentMessage", "id": item_id, "text": "", "phase": None}
            self._item_started(run, item)
        chunks, delay = DELTA_CHUNKS, self.turn_delay
        slow = SLOW_DIRECTIVE.search(prompt)
        if slow:  # same directive as the mock Responses server: 20 deltas
            chunks, delay = 20, float(slow.group(1))
        size = max(1, -(-len(reply) // chunks))
        for offset in range(0, len(reply), size):
            if delay:
                run.wake.wait(delay)
            with self.lock:
                if run.interrupted.is_set() or run.steers:
                    return  # like codex: a preempted message never completes
                delta = {
                    "threadId": run.thread_id,
                    "turnId": run.turn["id"],
                    "itemId": item_id,
                    "delta": reply[offset : offset + size],
                }
                self.emit("item/agentMessage/delta", delta)
        with self.lock:
            self._item_completed(run, dict(item, text=reply))

    def _run_shell(self, run: TurnRun, command: str) -> None:
        """`[[shell:CMD]]`: a commandExecution item, as codex's exec tool emits."""
        cwd = self.threads[run.thread_id]["cwd"]
        item = {
            "type": "commandExecution",
            "id": f"call_fake_{uuid.uuid4().hex[:8]}",
            "command": f"/bin/sh -c {command!r}",
            "cwd": cwd,
            "processId": None,
            "source": "unifiedExecStartup",
            "status": "inProgress",
            "commandActions": [{"type": "unknown", "command": command}],
            "aggregatedOutput": None,
            "exitCode": None,
            "durationMs": None,
        }
        with self.lock:
            self._item_started(run, item)
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                capture_output=True,
                text=True,
                timeout=SHELL_TIMEOUT,
                cwd=cwd if os.path.isdir(cwd or "") else None,
            )
            output, code = done.stdout + done.stderr, done.returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            output, code = f"{exc}\n", -1
        with self.lock:
            if output:
                delta = {
                    "threadId": run.thread_id,
                    "turnId": run.turn["id"],
                    "itemId": item["id"],
                    "delta": output,
                }
                self.emit("item/commandExecution/outputDelta", delta)
            finished = dict(
                item,
                status="completed" if code == 0 else "failed",
                exitCode=code,
                aggregatedOutput=output,
                durationMs=int((time.monotonic() - started) * 1000),
            )
            self._item_completed(run, finished)

    def _ask_approval(self, run: TurnRun) -> bool:
        """One command approval per turn; False if the turn was interrupted."""
        item = {
            "type": "commandExecution",
            "id": f"call_fake_{uuid.uuid4().hex[:8]}",
            "command": "echo fake",
            "cwd": self.threads[run.thread_id]["cwd"],
            "status": "inProgress",
            "exitCode": None,
            "aggregatedOutput": None,
        }
        with self.lock:
            run.waiting_on_approval = True
            self.emit("thread/status/changed", self._status_params(run.thread_id))
            self._item_started(run, item)
        request_id, slot = self.send_server_request(
            "item/commandExecution/requestApproval",
            {
                "kind": "command",
                "threadId": run.thread_id,
                "turnId": run.turn["id"],
                "itemId": item["id"],
                "startedAtMs": now_ms(),
                "command": item["command"],
                "cwd": item["cwd"],
                "availableDecisions": ["accept", "decline", "cancel"],
            },
        )
        run.pending_request_id = request_id
        while not slot.answered.wait(0.02):
            if run.interrupted.is_set():
                return False  # serverRequest/resolved follows turn/completed
        resolved = {"threadId": run.thread_id, "requestId": request_id}
        with self.lock:
            run.waiting_on_approval = False
            run.pending_request_id = None
            self.emit("serverRequest/resolved", resolved)
            self.emit("thread/status/changed", self._status_params(run.thread_id))
        decision = (slot.reply.get("result") or {}).get("decision")
        if decision in ("accept", "acceptForSession"):
            done = dict(item, status="completed", exitCode=0, aggregatedOutput="fake\n")
        else:
            done = dict(item, status="declined")
        with self.lock:
            self._item_completed(run, done)
        if decision == "cancel":
            run.interrupted.set()
            return False
        return True

    def _crash_mid_turn(self, run: TurnRun) -> None:
        if self.turn_delay:
            time.sleep(self.turn_delay)
        self.stderr("crashing in the middle of a turn (crash_on_turn)")
        sys.stdout.flush()
        os._exit(1)

    def _run_compaction(self, run: TurnRun) -> None:
        with self.lock:
            self.emit("thread/status/changed", self._status_params(run.thread_id))
            started = {"threadId": run.thread_id, "turn": turn_header(run.turn)}
            self.emit("turn/started", started)
            item = {"type": "contextCompaction", "id": str(uuid.uuid4())}
            self._item_started(run, item)
        if self.turn_delay:
            run.wake.wait(self.turn_delay)
        with self.lock:
            self._item_completed(run, item)
        self._finish_turn(run, "completed", count_tokens=False)

    def _finish_turn(
        self, run: TurnRun, status: str, *, count_tokens: bool = True
    ) -> None:
        thread_id = run.thread_id
        turn = run.turn
        with self.lock:
            record = self.threads[thread_id]
            if count_tokens:
                self._account_tokens(run, record)
            turn["status"] = status
            turn["completedAt"] = now_s()
            turn["durationMs"] = int((time.monotonic() - run.started_monotonic) * 1000)
            record["turns"].append(turn)
            record["updatedAt"] = now_s()
            del self.active[thread_id]
            self._save_state()
            idle = {"threadId": thread_id, "status": {"type": "idle"}}
            self.emit("thread/status/changed", idle)
            completed = {"threadId": thread_id, "turn": public_turn(turn, "summary")}
            self.emit("turn/completed", completed)
            if run.pending_request_id is not None:
                # An approval left unanswered by an interrupt is resolved last.
                resolved = {"threadId": thread_id, "requestId": run.pending_request_id}
                self.emit("serverRequest/resolved", resolved)
        if status == "completed":
            self._maybe_continue_goal(thread_id)

    def _account_tokens(self, run: TurnRun, record: JsonDict) -> None:
        record["tokensUsed"] += TOKENS_PER_TURN
        last = {
            "totalTokens": TOKENS_PER_TURN,
            "inputTokens": 100,
            "cachedInputTokens": 0,
            "outputTokens": 10,
            "reasoningOutputTokens": 0,
        }
        usage = {
            "total": dict(last, totalTokens=record["tokensUsed"]),
            "last": last,
            "modelContextWindow": 121600,
        }
        self.emit(
            "thread/tokenUsage/updated",
            {"threadId": run.thread_id, "turnId": run.turn["id"], "tokenUsage": usage},
        )
        goal = record["goal"]
        if run.goal_turn and goal is not None:
            goal["tokensUsed"] += TOKENS_PER_TURN
            goal["timeUsedSeconds"] += int(time.monotonic() - run.started_monotonic)
            goal["updatedAt"] = now_s()
            update = {"threadId": run.thread_id, "turnId": run.turn["id"]}
            self.emit("thread/goal/updated", update | {"goal": dict(goal)})

    def _status_params(self, thread_id: str) -> JsonDict:
        return {"threadId": thread_id, "status": self._status(thread_id)}

    def _item_started(self, run: TurnRun, item: JsonDict) -> None:
        item["_startedAtMs"] = now_ms()
        run.turn["items"].append(item)
        self._emit_item("item/started", run, item)

    def _item_completed(self, run: TurnRun, item: JsonDict) -> None:
        item["_completedAtMs"] = now_ms()
        items = run.turn["items"]
        for index, existing in enumerate(items):
            if existing["id"] == item["id"]:
                items[index] = item
        self._emit_item("item/completed", run, item)

    def _emit_item(self, method: str, run: TurnRun, item: JsonDict) -> None:
        params = {"threadId": run.thread_id, "turnId": run.turn["id"]}
        self.emit(method, params | {"item": public_item(item)})

    # -- misc ------------------------------------------------------------------

    def m_model_list(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        model = {
            "id": "mock-model",
            "model": "mock-model",
            "displayName": "Mock Model",
            "description": "The fake app-server's only model.",
            "hidden": False,
            "supportedReasoningEfforts": [
                {"reasoningEffort": "low", "description": "fast"},
                {"reasoningEffort": "medium", "description": "balanced"},
            ],
            "defaultReasoningEffort": "medium",
            "inputModalities": ["text"],
            "isDefault": True,
        }
        return {"data": [model], "nextCursor": None}

    def m_config_read(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        return {
            "config": {
                "model": "mock-model",
                "model_provider": "mock",
                "approval_policy": "untrusted" if self.mode == "approval" else "never",
                "sandbox_mode": "read-only",
            }
        }

    def m_account_read(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        return {"account": None, "requiresOpenaiAuth": False}

    def m_fake_emit(self, params: JsonDict, after: list[Callable[[], None]]) -> Any:
        method = str(require(params, "method"))
        payload = params.get("params") or {}
        after.append(lambda: self.emit(method, payload))
        return {}

    # -- persistence -------------------------------------------------------------

    def _state_path(self) -> Path | None:
        return self.codex_home / STATE_FILE_NAME if self.codex_home else None

    def _load_state(self) -> None:
        path = self._state_path()
        if path is None or not path.exists():
            return
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            self.stderr(f"ignoring unreadable state file {path}")
            return
        self.threads = stored.get("threads", {})
        self.reply_counter = int(stored.get("replyCounter", 0))

    def _adopt_foreign_threads(self) -> None:
        """Threads another app-server wrote to the same CODEX_HOME.

        Like codex's shared state DB: a second process on one CODEX_HOME
        sees the first one's threads (thread/read, thread/list), not its
        live events.
        """
        path = self._state_path()
        if path is None or not path.exists():
            return
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        for thread_id, record in (stored.get("threads") or {}).items():
            self.threads.setdefault(thread_id, record)

    def _save_state(self) -> None:
        path = self._state_path()
        if path is None or not path.parent.is_dir():
            return
        self._adopt_foreign_threads()  # never drop another process's threads
        durable = {k: v for k, v in self.threads.items() if not v["ephemeral"]}
        payload = {"threads": durable, "replyCounter": self.reply_counter}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(temporary, path)


class _Deferred:
    """Marks a request answered later, from another thread."""


_DEFERRED = _Deferred()


def public_item(item: JsonDict) -> JsonDict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def item_search_text(item: JsonDict) -> str:
    parts = [item.get("text"), item.get("command"), item.get("aggregatedOutput")]
    for part in item.get("content") or []:
        if isinstance(part, dict):
            parts.append(part.get("text"))
    return "\n".join(str(p) for p in parts if isinstance(p, str) and p)


def turn_header(turn: JsonDict) -> JsonDict:
    """A turn as turn/start and turn/started show it: items not loaded."""
    return dict(turn, items=[], itemsView="notLoaded")


def public_turn(turn: JsonDict, items_view: str) -> JsonDict:
    items = [public_item(i) for i in turn["items"]]
    if items_view == "summary":  # codex keeps only the final agent message
        items = [i for i in items if i["type"] == "agentMessage"][-1:]
    elif items_view == "notLoaded":
        items = []
    return dict(turn, items=items, itemsView=items_view)


def main(argv: list[str]) -> int:
    if argv[1:2] != ["app-server"]:
        sys.stderr.write("usage: fake_appserver.py app-server\n")
        return 2
    if os.environ.get("FAKE_APPSERVER_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = FakeAppServer()
    return server.serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
