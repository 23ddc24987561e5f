"""The worker: the one process per host that owns `codex app-server`.

It journals every app-server message (LaneEvent rows, then an announcement
on the journal bus after commit), answers the app-server's own requests by
policy, serves request/reply commands from Redis lists,
drains durable queues, and restarts the app-server when it dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from dispatchsite.core.config import load_policy
from lanes.appserver.binary import app_server_argv
from lanes.appserver.client import AppServerClient
from lanes.appserver.protocol import (
    SERVER_REQUEST_RESOLVED,
    THREAD_RESUME,
    THREAD_TURNS_LIST,
    TURN_START,
)
from lanes.journal.dispatch_events import MESSAGE_DELIVERED
from lanes.journal.lane_state import lanes_mark_turns_lost
from lanes.journal.writer import JournalResult, SeqCounter, journal_write_batch
from lanes.turns import turn_start_params
from lanes.worker import recovery
from lanes.worker.gap_repair import gap_turn_events
from lanes.worker.gateway import command_channel
from lanes.worker.held import ServerRequestDesk
from lanes.worker.journal_health import JournalKeeper, announce
from lanes.worker.lease import HostLease
from lanes.worker.publish import journal_publish
from lanes.worker.queue import (
    lanes_with_pending,
    queued_message_claim_next,
    queued_message_mark_failed,
    queued_message_mark_sent,
)
from lanes.worker.rpc_queue import RpcInbox

log = logging.getLogger("dispatch.worker")
T = TypeVar("T")

JOURNAL_BATCH = 2000
COALESCE_BELOW = 1000
COALESCE_SECONDS = 0.025
HEARTBEAT_SECONDS = 2.0
RESTART_REASON = "dispatch restarted during this turn"


def db(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    # One thread for all ORM work keeps SQLite writes serialized in-process.
    return sync_to_async(fn, thread_sensitive=True)


def worker_state_file(host: str) -> Path:
    return Path(settings.DISPATCH_RUN_DIR) / f"worker-{host}.json"


class Worker:
    def __init__(self, *, host: str) -> None:
        self.host = host
        self.channel = command_channel(host)
        self.lease = HostLease(host=host)
        self.client: AppServerClient | None = None
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.counter = SeqCounter()
        self.last_flush = 0.0
        self.lane_locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.app_server_restarts = 0
        self.started_at = timezone.now()
        self.ready_at: str | None = None
        self.policy = load_policy()
        # Why the turns found running at the next app-server start are gone.
        self.lost_reason = RESTART_REASON
        # Answers the app-server's requests; holds approvals for a person.
        self.requests = ServerRequestDesk(host=host, inbox=self.inbox)
        self.rpc = RpcInbox(host)
        # Holds the journal while the DB refuses writes (disk full, read-only).
        self.journal = JournalKeeper(
            write=lambda batch: db(journal_write_batch)(batch, self.counter),
            written=self.journaled,
            reconcile=lambda lost: gap_turn_events(self.client, lost),
        )

    # -- lifecycle ---------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        # Before anything that acts for the host: a refused worker touches nothing.
        await db(self.lease.claim)()
        background = [
            asyncio.create_task(self.supervise_app_server()),
            asyncio.create_task(self.journal_loop()),
            asyncio.create_task(self.command_loop()),
            asyncio.create_task(self.heartbeat_loop()),
            asyncio.create_task(self.rpc_loop()),
            asyncio.create_task(self.journal.retry_loop()),
        ]
        await self.stopping.wait()
        for task in background[2:]:
            task.cancel()
        await asyncio.gather(*background[2:], return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        await background[0]
        await self.flush_journal()
        await self.journal.stop()
        background[1].cancel()
        await self.rpc.close()
        await db(self.lease.release)()
        worker_state_file(self.host).unlink(missing_ok=True)
        if self.lease.lost is not None:  # exit non-zero, saying who holds it
            raise self.lease.lost

    async def supervise_app_server(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                await self.start_app_server()
                backoff = 0.2
            except Exception as exc:  # keep serving; the next try may work
                log.error("app-server failed to start: %s", exc)
                # No app-server to read the turns back from: close them now
                # rather than leave them running until one starts.
                await self.settle_lost_turns(read_back=False)
                await self.sleep_unless_stopping(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            assert self.client is not None
            closed = asyncio.create_task(self.client.wait_closed())
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            self.ready.clear()
            if self.stopping.is_set():
                closed.cancel()
                return
            self.app_server_restarts += 1
            log.warning("app-server exited (%s); restarting", self.client.returncode)
            await self.flush_journal()
            await self.requests.expire(connection=self.requests.connection)
            # Its turns are closed once the next app-server can say how they
            # ended (start_app_server), within the restart's ~0.2 s.
            self.lost_reason = "the app-server exited during this turn"

    async def start_app_server(self) -> None:
        log_dir = Path(settings.DISPATCH_LOG_DIR)
        log_dir.mkdir(parents=True, exist_ok=True)
        await self.requests.new_connection()
        client = AppServerClient(
            app_server_argv(settings.DISPATCH_CODEX_BIN),
            env=dict(os.environ),
            on_notification=self.on_notification,
            on_server_request=self.on_server_request,
            stderr_path=log_dir / "app-server.log",
        )
        await client.start()
        self.client = client
        await self.reconcile()
        await self.settle_lost_turns(read_back=True)
        await db(lanes_mark_turns_lost)(host=self.host, reason=self.lost_reason)
        self.ready_at = timezone.now().isoformat()
        self.ready.set()
        await self.write_heartbeat()
        for thread_id in await db(lanes_with_pending)(host=self.host):
            self.spawn(self.drain_lane(thread_id))

    async def reconcile(self) -> None:
        """Reload owned lanes into the new app-server and settle in-flight queues."""
        assert self.client is not None
        client = self.client
        limit = asyncio.Semaphore(8)

        async def resume(thread_id: str) -> None:
            async with limit:
                try:
                    await client.request(
                        THREAD_RESUME, {"threadId": thread_id, "excludeTurns": True}
                    )
                except Exception as exc:  # e.g. a lane that never ran a turn
                    log.info("resume %s: %s", thread_id, exc)

        owned = await db(recovery.lanes_to_resume)(host=self.host)
        await asyncio.gather(*(resume(t) for t in owned))
        for message in await db(recovery.in_flight_messages)(host=self.host):
            delivered = await self.message_reached_thread(
                message["thread_id"], message["client_message_id"]
            )
            await db(recovery.in_flight_settle)(pk=message["pk"], delivered=delivered)

    async def settle_lost_turns(self, *, read_back: bool) -> None:
        """Journal a final turn/completed for each turn the old app-server had.

        Every reader follows the journal, so a turn closed only in the lane
        row would stay `inProgress` on the live page and in history.
        """
        lost = await db(recovery.lost_turns)(host=self.host)
        if not lost:
            return
        client = self.client if read_back else None
        try:
            messages = await recovery.lost_turn_events(
                client, lost, reason=self.lost_reason
            )
            # Written here rather than through the inbox: the lanes must be
            # settled before the queue drains and commands are served.
            if messages:
                result = await db(journal_write_batch)(messages, self.counter)
                await self.publish(result.frames)
                await db(announce)(result.rows)
        except Exception:  # the rows are still settled: lanes_mark_turns_lost
            log.exception("could not journal the end of %d lost turns", len(lost))
        self.lost_reason = RESTART_REASON

    async def message_reached_thread(self, thread_id: str, client_id: str) -> bool:
        assert self.client is not None
        try:
            page = await self.client.request(
                THREAD_TURNS_LIST,
                {"threadId": thread_id, "limit": 5, "itemsView": "full"},
            )
        except Exception as exc:
            log.info("turns/list %s: %s", thread_id, exc)
            return False
        for turn in page.get("data", []):
            for item in turn.get("items", []):
                if (
                    item.get("type") == "userMessage"
                    and item.get("clientId") == client_id
                ):
                    return True
        return False

    async def sleep_unless_stopping(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- app-server messages -----------------------------------------------

    def on_notification(self, message: dict[str, Any]) -> None:
        message["_received_at"] = timezone.now()
        message["_received_perf"] = time.perf_counter()
        self.inbox.put_nowait(message)
        if message.get("method") == SERVER_REQUEST_RESOLVED and self.requests.held:
            # e.g. the turn was interrupted: codex no longer waits for it.
            self.spawn(self.requests.resolved(message.get("params") or {}))

    async def on_server_request(self, message: dict[str, Any]) -> dict[str, Any]:
        message["_received_at"] = timezone.now()
        message["_received_perf"] = time.perf_counter()
        self.inbox.put_nowait(message)
        return await self.requests.answer(message)

    async def journal_loop(self) -> None:
        while True:
            first = await self.inbox.get()
            await self.journal_batch(first)

    async def flush_journal(self) -> None:
        while not self.inbox.empty():
            await self.journal_batch(self.inbox.get_nowait())

    async def journal_batch(self, first: dict[str, Any]) -> None:
        batch = [first]
        while len(batch) < JOURNAL_BATCH and not self.inbox.empty():
            batch.append(self.inbox.get_nowait())
        if 1 < len(batch) < COALESCE_BELOW:
            # A stream is arriving. Every batch costs a transaction and a
            # message to each watcher, so batches start at most once per
            # COALESCE_SECONDS; within that, an event waits no longer than
            # COALESCE_SECONDS after it was read (those that queued behind
            # the previous batch go at once).
            start = max(first["_received_perf"], self.last_flush) + COALESCE_SECONDS
            delay = start - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            while len(batch) < JOURNAL_BATCH and not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
        self.last_flush = time.perf_counter()
        await self.journal.write(batch)

    async def journaled(self, result: JournalResult) -> None:
        await self.publish(result.frames)
        for thread_id in result.drain_thread_ids:
            self.spawn(self.drain_lane(thread_id))
        if result.rows:
            await db(announce)(result.rows)

    async def publish(self, frames: list[tuple[str, dict[str, Any]]]) -> None:
        await journal_publish(frames)

    # -- queue ---------------------------------------------------------------

    async def drain_lane(self, thread_id: str) -> None:
        lock = self.lane_locks.setdefault(thread_id, asyncio.Lock())
        async with lock:
            if not self.ready.is_set() or self.client is None:
                return
            message = await db(queued_message_claim_next)(thread_id=thread_id)
            if message is None:
                return
            params = turn_start_params(
                message.lane,
                message.text,
                client_message_id=str(message.client_message_id),
            )
            try:
                result = await self.client.request(TURN_START, params)
            except Exception as exc:
                if self.client.is_running:
                    await db(queued_message_mark_failed)(
                        message=message, error=str(exc)
                    )
                # else: left `sending`; reconcile checks whether it arrived.
                return
            await db(queued_message_mark_sent)(
                message=message, turn_id=result["turn"]["id"]
            )
            self.requests.journal_event(
                thread_id,
                MESSAGE_DELIVERED,
                {"messageId": message.pk, "turnId": result["turn"]["id"]},
            )

    # -- commands ------------------------------------------------------------

    async def command_loop(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(self.channel)
            except Exception as exc:  # redis restarting: retry shortly
                log.warning("command receive failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            self.spawn(self.handle_command(message))

    async def rpc_loop(self) -> None:
        """Serve request/reply commands (lanes.worker.rpc_queue), each at once."""
        while True:
            try:
                message = await self.rpc.receive()
            except Exception as exc:  # redis restarting: retry shortly
                log.warning("rpc receive failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is not None and await self.take(message):
                self.spawn(self.answer(message))

    async def take(self, message: dict[str, Any]) -> bool:
        """Whether to serve `message`; if not, it goes back to the host's list."""
        serve = False
        try:
            serve = await self.still_holds_host()
        finally:  # also when cancelled: the host's next worker answers it
            if not serve:
                await self.rpc.give_back(message)
        return serve

    async def answer(self, message: dict[str, Any]) -> None:
        reply = await self.run_command(message)
        try:
            await self.rpc.reply(message["reply_key"], reply)
        except Exception as exc:  # the caller times out and says so
            log.warning("rpc reply failed: %s", exc)

    async def handle_command(self, message: dict[str, Any]) -> None:
        """Wake-ups on the channel layer: losing one is harmless."""
        kind = message.get("type")
        if not await self.still_holds_host():
            return
        if kind == "appserver.drain":
            await self.drain_lane(message["thread_id"])
        elif kind == "appserver.answered":
            self.requests.wake(message.get("pk"))

    async def run_command(self, message: dict[str, Any]) -> dict[str, Any]:
        timeout = float(message.get("timeout") or settings.DISPATCH_RPC_TIMEOUT)
        if message.get("type") == "appserver.status":
            return {"ok": True, "result": self.status()}
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return error_reply("the app-server is not ready (restarting?)")
        assert self.client is not None
        try:
            result = await self.client.request(
                message["method"], message.get("params") or {}, timeout=timeout
            )
        except Exception as exc:
            return error_reply(
                str(getattr(exc, "message", exc)), getattr(exc, "rpc_code", None)
            )
        return {"ok": True, "result": result}

    def status(self) -> dict[str, Any]:
        client = self.client
        return {
            "host": self.host,
            "pid": os.getpid(),
            "ready": self.ready.is_set(),
            "app_server_pid": client.pid if client else None,
            "app_server_version": client.version if client else None,
            "app_server_restarts": self.app_server_restarts,
            "ready_at": self.ready_at,
            "journal": self.journal.status(),
        }

    # -- heartbeat -------------------------------------------------------------

    async def still_holds_host(self) -> bool:
        """Renew the lease first unless a heartbeat just did (a stalled worker)."""
        if not self.lease.held_within(HEARTBEAT_SECONDS + 1):
            await self.write_heartbeat()
        return self.lease.lost is None

    async def heartbeat_loop(self) -> None:
        while True:
            await self.write_heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def write_heartbeat(self) -> None:
        status = self.status()
        try:
            await db(self.lease.beat)(
                app_server_pid=status["app_server_pid"] if status["ready"] else None,
                app_server_version=status["app_server_version"] or "",
            )
        except DatabaseError as exc:  # the state file still tells `status`
            log.warning("worker lease heartbeat failed: %s", exc)
        if self.lease.lost is not None:  # another worker serves the host now
            return self.stopping.set()
        if not self.ready.is_set():
            return
        path = worker_state_file(self.host)
        payload = {**status, "heartbeat_at": timezone.now().isoformat()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)


def error_reply(message: str, code: Any = None) -> dict[str, Any]:
    return {"ok": False, "error": {"message": message, "code": code}}


def run_worker(*, host: str) -> None:
    asyncio.run(Worker(host=host).run())
