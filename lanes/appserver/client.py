"""An asyncio JSON-RPC client for one `codex app-server` child process (stdio)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import math
import os
import re
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from lanes.appserver import framing
from lanes.appserver.binary import CodexConfigError, config_warning_error
from lanes.appserver.errors import (
    JSONRPC_INTERNAL_ERROR,
    JSONRPC_METHOD_NOT_FOUND,
    AppServerClosed,
    AppServerStartError,
    AppServerTimeout,
    RpcError,
)
from lanes.appserver.framing import STDOUT_LINE_LIMIT, JsonDict
from lanes.appserver.pending import PendingRequests
from lanes.appserver.process import (
    child_kill_group,
    child_spawn,
    child_stop,
    child_wait_exit,
)
from lanes.appserver.stderr import StderrTail

logger = logging.getLogger(__name__)

NotificationHandler = Callable[[JsonDict], Awaitable[None] | None]
ServerRequestHandler = Callable[[JsonDict], Awaitable[JsonDict]]

# 0.169 sends the invalid-config configWarning in the same millisecond as the
# initialize response, followed by remoteControl/status/changed; this is only
# the upper bound for servers that send nothing after it.
CONFIG_WARNING_SETTLE_S = 0.3
# Lets the reader drain what the child wrote before it died.
EOF_GRACE_S = 0.5

_USER_AGENT_VERSION = re.compile(r"^[^/\s]+/(\S+)")


class AppServerClient:
    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        on_notification: NotificationHandler | None = None,
        on_server_request: ServerRequestHandler | None = None,
        stderr_path: Path | None = None,
        client_name: str = "dispatch",
        client_version: str = "0.1.0",
        opt_out_notifications: list[str] | None = None,
        config_warning_settle: float = CONFIG_WARNING_SETTLE_S,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.on_notification = on_notification
        self.on_server_request = on_server_request
        self.stderr_path = stderr_path
        self.client_name = client_name
        self.client_version = client_version
        self.opt_out_notifications = list(opt_out_notifications or [])
        self.config_warning_settle = config_warning_settle

        self.init_result: JsonDict | None = None
        self.config_error: CodexConfigError | None = None
        self._stderr = StderrTail(stderr_path)

        self._proc: asyncio.subprocess.Process | None = None
        self._pending = PendingRequests()
        self._write_lock = asyncio.Lock()
        self._close_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._stderr_drain: asyncio.Task[None] | None = None
        self._exit_watch: asyncio.Task[None] | None = None
        self._notifier: asyncio.Task[None] | None = None
        # Notifications are handed to on_notification from their own task, in
        # order, so a handler may itself await request() without deadlocking
        # the reader that must deliver the response.
        self._notifications: asyncio.Queue[JsonDict | None] = asyncio.Queue()
        self._stdout_done = asyncio.Event()
        self._exited = asyncio.Event()
        self._closing = False
        self._initialize_id: int | None = None
        self._initialize_answered = False
        self._startup_settled = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------

    async def start(self, timeout: float = 15.0) -> JsonDict:
        """Spawn the child and complete the `initialize` handshake."""
        if self._proc is not None:
            raise RuntimeError("AppServerClient.start() called twice")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._spawn()
        try:
            self.init_result = await self._initialize(deadline)
            with contextlib.suppress(AppServerClosed):
                # An exit here is reported, with stderr, by the verdict below.
                await self.notify("initialized")
            await self._await_config_verdict(deadline)
        except BaseException:
            # Nothing worth a graceful shutdown yet, and a server that fell
            # back to a default config is already phoning home.
            await self._shutdown(graceful_timeout=0.0, kill_timeout=0.5)
            raise
        return self.init_result

    async def close(self, timeout: float = 3.0) -> None:
        """Close stdin, then escalate to SIGTERM and SIGKILL; idempotent."""
        await self._shutdown(graceful_timeout=timeout, kill_timeout=timeout)

    async def wait_closed(self) -> None:
        """Until the child has exited and its stdout has been fully read."""
        if self._proc is None:
            return
        await self._exited.wait()
        await self._stdout_done.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return (
            self._proc is not None
            and self._proc.returncode is None
            and not self._closing
            and not self._stdout_done.is_set()
        )

    @property
    def stderr_tail(self) -> collections.deque[str]:
        return self._stderr.lines

    @property
    def user_agent(self) -> str | None:
        if not self.init_result:
            return None
        agent = self.init_result.get("userAgent")
        return agent if isinstance(agent, str) else None

    @property
    def version(self) -> str | None:
        """The codex version from userAgent: "dispatch/0.169.0 (...)" -> "0.169.0"."""
        match = _USER_AGENT_VERSION.match(self.user_agent or "")
        return match.group(1) if match else None

    # -- messaging ---------------------------------------------------------

    async def request(
        self, method: str, params: JsonDict | None = None, timeout: float = 30.0
    ) -> Any:
        request_id, future = self._register_request()
        try:
            return await self._send_and_wait(
                request_id, future, method, params, timeout
            )
        finally:
            self._pending.forget(request_id)

    async def notify(self, method: str, params: JsonDict | None = None) -> None:
        await self._write(framing.notification_message(method, params))

    def stderr_excerpt(self, lines: int = 10) -> str:
        """The last meaningful stderr lines, for error messages."""
        return self._stderr.excerpt(lines)

    # -- startup internals -------------------------------------------------

    async def _spawn(self) -> None:
        self._stderr.open()
        try:
            self._proc = await child_spawn(self.argv, env=self.env, cwd=self.cwd)
        except OSError as exc:
            self._stderr.close()
            raise AppServerStartError(
                f"cannot start {' '.join(self.argv)!r}: {exc.strerror or exc}"
            ) from exc
        self._reader = self._spawn_task(self._read_stdout(), "stdout reader")
        assert self._proc.stderr is not None
        self._stderr_drain = self._spawn_task(
            self._stderr.drain(self._proc.stderr), "stderr drain"
        )
        self._exit_watch = self._spawn_task(self._watch_exit(), "exit watch")
        self._notifier = self._spawn_task(self._deliver_notifications(), "notifier")

    async def _initialize(self, deadline: float) -> JsonDict:
        capabilities: JsonDict = {"experimentalApi": True}
        if self.opt_out_notifications:
            capabilities["optOutNotificationMethods"] = self.opt_out_notifications
        params: JsonDict = {
            "clientInfo": {"name": self.client_name, "version": self.client_version},
            "capabilities": capabilities,
        }
        request_id, future = self._register_request()
        self._initialize_id = request_id
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        try:
            result = await self._send_and_wait(
                request_id, future, "initialize", params, remaining
            )
        except AppServerTimeout as exc:
            raise self._start_error(
                f"no answer to initialize within {remaining:.1f}s"
            ) from exc
        except AppServerClosed as exc:
            await self._settle_after_exit()
            raise self._start_error("exited before answering initialize") from exc
        except RpcError as exc:
            raise self._start_error(f"initialize was rejected: {exc.message}") from exc
        finally:
            self._pending.forget(request_id)
        if not isinstance(result, dict):
            raise self._start_error(f"initialize returned {result!r}")
        return result

    async def _await_config_verdict(self, deadline: float) -> None:
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._startup_settled.wait(),
                min(self.config_warning_settle, remaining),
            )
        if self.config_error is not None:
            raise self.config_error
        if self._stdout_done.is_set():
            await self._settle_after_exit()
            raise self._start_error("exited right after initialize")

    async def _settle_after_exit(self, timeout: float = 1.0) -> None:
        # The exit is often noticed on stdout before stderr has been drained,
        # and the stderr tail is the only useful part of the error.
        tasks = [t for t in (self._stderr_drain, self._exit_watch) if t is not None]
        tasks = [t for t in tasks if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def _start_error(self, reason: str) -> AppServerStartError:
        status = ""
        if self.returncode is not None:
            status = f" (exit {self.returncode})"
        excerpt = self.stderr_excerpt()
        message = f"codex app-server {reason}{status}"
        if excerpt:
            message += f"; stderr:\n{excerpt}"
        return AppServerStartError(
            message,
            data={"argv": self.argv, "returncode": self.returncode, "stderr": excerpt},
        )

    # -- request plumbing --------------------------------------------------

    def _register_request(self) -> tuple[int, asyncio.Future[Any]]:
        if self._proc is None:
            raise AppServerClosed("app-server client was not started")
        if self._closing or self._stdout_done.is_set():
            raise self._closed_error()
        return self._pending.open()

    async def _send_and_wait(
        self,
        request_id: int,
        future: asyncio.Future[Any],
        method: str,
        params: JsonDict | None,
        timeout: float,
    ) -> Any:
        await self._write(framing.request_message(request_id, method, params))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AppServerTimeout(
                f"codex app-server did not answer {method} within {timeout:g}s",
                data={"method": method, "timeout": timeout},
            ) from None

    async def _write(self, message: JsonDict) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise AppServerClosed("app-server client was not started")
        line = framing.encode_line(message)
        async with self._write_lock:
            if proc.stdin.is_closing():
                raise self._closed_error()
            try:
                proc.stdin.write(line)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise self._closed_error() from exc

    def _closed_error(self) -> AppServerClosed:
        if self._closing:
            return AppServerClosed("app-server client is closed")
        status = f"exit {self.returncode}" if self.returncode is not None else "EOF"
        excerpt = self.stderr_excerpt(3)
        message = f"codex app-server went away ({status})"
        if excerpt:
            message += f"; stderr:\n{excerpt}"
        return AppServerClosed(message, data={"returncode": self.returncode})

    def _fail_pending(self) -> None:
        self._pending.fail_all(self._closed_error())

    # -- reading -----------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                try:
                    line = await stdout.readline()
                except ValueError:  # over STDOUT_LINE_LIMIT; asyncio dropped it
                    logger.error("app-server line over %d bytes", STDOUT_LINE_LIMIT)
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    break
                if not line:
                    break
                self._route_line(line)
        finally:
            self._stdout_done.set()
            self._startup_settled.set()
            self._notifications.put_nowait(None)
        if not self._closing:
            # Briefly, so the AppServerClosed message can carry the exit status.
            await self._settle_after_exit(timeout=0.2)
        self._fail_pending()

    def _route_line(self, line: bytes) -> None:
        message = framing.decode_line(line)
        if message is None:
            return
        kind = framing.message_kind(message)
        if kind == "request":
            # Handled off the reader: an approval may wait on a human while
            # notifications must keep flowing.
            self._spawn_task(self._answer_server_request(message), message["method"])
        elif kind == "notification":
            self._note_startup_notification(message["method"], message)
            self._notifications.put_nowait(message)
        elif kind == "response":
            self._resolve_response(message)
        else:
            logger.warning("app-server sent an unrecognised message: %.200r", line)

    def _resolve_response(self, message: JsonDict) -> None:
        request_id = message.get("id")
        if not self._pending.resolve(message):
            logger.debug("response to an unknown or abandoned request: %r", request_id)
        elif request_id == self._initialize_id:
            self._initialize_answered = True

    def _note_startup_notification(self, method: str, message: JsonDict) -> None:
        if method == "configWarning":
            self._check_config_warning(message.get("params") or {})
        elif self._initialize_answered:
            # Anything else after initialize means the warnings are all out.
            self._startup_settled.set()

    async def _deliver_notifications(self) -> None:
        while (message := await self._notifications.get()) is not None:
            if self.on_notification is None:
                continue
            try:
                outcome = self.on_notification(message)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("on_notification failed for %s", message["method"])

    def _check_config_warning(self, params: JsonDict) -> None:
        error = config_warning_error(params, env=self.env or os.environ)
        if error is None:
            return
        self.config_error = error
        # Codex now runs on defaults (OpenAI provider, plugin sync to github.com).
        logger.error("%s", self.config_error.message)
        self._startup_settled.set()

    async def _answer_server_request(self, message: JsonDict) -> None:
        request_id = message["id"]
        method = message["method"]
        reply: JsonDict
        if self.on_server_request is None:
            reply = framing.error_reply(
                request_id,
                JSONRPC_METHOD_NOT_FOUND,
                f"dispatch has no handler for server request {method}",
            )
        else:
            try:
                result = await self.on_server_request(message)
                reply = {"id": request_id, "result": result}
            except Exception as exc:
                logger.exception("on_server_request failed for %s", method)
                reply = framing.error_reply(
                    request_id,
                    JSONRPC_INTERNAL_ERROR,
                    f"dispatch failed to handle {method}: {exc}",
                )
        try:
            await self._write(reply)
        except AppServerClosed:
            logger.info("could not answer %s: app-server is gone", method)

    async def _watch_exit(self) -> None:
        assert self._proc is not None
        await child_wait_exit(self._proc, math.inf)
        self._exited.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stdout_done.wait(), EOF_GRACE_S)
        if not self._stdout_done.is_set():
            # Something in codex's process group still holds stdout open.
            child_kill_group(self._proc)
            self._fail_pending()

    # -- shutdown ----------------------------------------------------------

    async def _shutdown(self, *, graceful_timeout: float, kill_timeout: float) -> None:
        async with self._close_lock:
            proc = self._proc
            if proc is None or (self._closing and self._exited.is_set()):
                return
            self._closing = True
            current = asyncio.current_task()
            # Pending server-request answers cannot be delivered any more.
            core = (self._reader, self._stderr_drain, self._exit_watch, self._notifier)
            for task in list(self._tasks):
                if task not in core and task is not current:
                    task.cancel()
            await child_stop(
                proc, graceful_timeout=graceful_timeout, kill_timeout=kill_timeout
            )
            if proc.returncode is not None:
                self._exited.set()
            # Let the reader and notifier finish delivering what codex wrote
            # before it exited; a handler that hangs does not block close().
            others = [t for t in self._tasks if t is not current and not t.done()]
            if others:
                await asyncio.wait(others, timeout=1.0)
            for task in list(self._tasks):
                if task is not current:
                    task.cancel()
            self._fail_pending()
            self._stderr.close()

    def _spawn_task(
        self, coro: Coroutine[Any, Any, None], name: str
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"appserver {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
