"""Media worker processes of one node (``TONGBAN_MEDIA_WORKERS``, one per core by default).

One Python process forwards media on one core. The pool starts N ``media.worker`` processes,
places each call on the one carrying the fewest calls (or on the one the cluster chose), and
carries the call's offers and candidates to it over a Unix socket pair (one JSON object per
line; ``media/worker.py`` has the protocol). A worker that dies is noticed at once (its socket
closes): the calls it carried are handed to ``on_lost`` (the bridge ends them with
``media_failure``; their partial dumps stay on disk and are remuxed) and the worker is started
again.

The per-user cap on peer connections (``max_peer_connections_per_user``) is the node's: a
worker caps only its own calls, so the pool counts, per user, the calls of this node in which
they have a peer connection, and refuses an offer past the cap before any worker sees it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from media.engine import MediaLimits, MediaSettings
from media.host import DumpSpec, RenegotiateHandler, media_unavailable
from media.worker import LINE_LIMIT, settings_to_dict
from tongban.errors import LimitReached, TongbanError

log = logging.getLogger(__name__)

LostHandler = Callable[[list[str]], Awaitable[None]]
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


class WorkerError(TongbanError):
    """An error a worker answered with, carried back with its code."""


@dataclass(eq=False)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    started: float
    alive: bool = True
    generation: int = 0  # how many times this slot's worker was started again
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)
    reader_task: asyncio.Task[None] | None = None


class WorkerPool:
    def __init__(
        self,
        count: int,
        settings: MediaSettings,
        *,
        on_renegotiate: RenegotiateHandler | None = None,
        on_lost: LostHandler | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.count = count
        # the node's caps are shared out between the workers
        limits = settings.limits
        self._settings = replace(
            settings,
            limits=MediaLimits(
                max_peer_connections=max(1, -(-limits.max_peer_connections // count)),
                max_peer_connections_per_user=limits.max_peer_connections_per_user,
                max_calls=max(1, -(-limits.max_calls // count)),
            ),
        )
        self.on_renegotiate = on_renegotiate
        self.on_lost = on_lost
        self._workers: list[_Worker | None] = [None] * count
        self._where: dict[str, _Worker] = {}
        self._per_user_cap = limits.max_peer_connections_per_user
        self._legs: dict[str, set[str]] = {}  # call -> users with a peer connection in it
        self._per_user: Counter[str] = Counter()  # user -> calls of theirs with one
        self._ids = itertools.count(1)
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.restarts = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        workers = await asyncio.gather(*(self._spawn(i) for i in range(self.count)))
        for worker in workers:
            self._workers[worker.index] = worker

    async def _spawn(self, index: int) -> _Worker:
        parent, child = socket.socketpair()
        root = _PROJECT_ROOT  # so ``-m media.worker`` imports wherever the server was started
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "media.worker",
                "--fd",
                str(child.fileno()),
                "--index",
                str(index),
                "--log-level",
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=LINE_LIMIT)
        worker = _Worker(index, proc, writer, time.monotonic())
        writer.write(json.dumps({"settings": settings_to_dict(self._settings)}).encode() + b"\n")
        try:
            ready = json.loads(await asyncio.wait_for(reader.readline(), START_TIMEOUT_S) or b"{}")
        except (TimeoutError, ValueError):
            ready = {}
        if ready.get("event") != "ready":
            proc.kill()
            await proc.wait()
            writer.close()
            raise RuntimeError(f"media worker {index} did not start (exit {proc.returncode})")
        worker.reader_task = asyncio.create_task(self._read(worker, reader), name=f"mw-{index}")
        log.info("media worker %d started (pid %d)", index, proc.pid)
        return worker

    async def close(self) -> None:
        """Stop every worker: their calls' dumps are closed cleanly first."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._stop(w) for w in self._workers if w is not None))
        self._where.clear()

    async def _stop(self, worker: _Worker) -> None:
        if worker.alive:
            try:
                await self._request(worker, "shutdown", {}, wait_s=STOP_TIMEOUT_S)
            except TongbanError:
                log.warning("media worker %d did not stop in time", worker.index)
        worker.alive = False
        try:
            await asyncio.wait_for(worker.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            worker.proc.kill()
            await worker.proc.wait()
        worker.writer.close()
        if worker.reader_task is not None:
            worker.reader_task.cancel()
            await asyncio.gather(worker.reader_task, return_exceptions=True)

    # -- the MediaHost API -------------------------------------------------------------------

    async def open_call(
        self, call_id: str, dump: DumpSpec | None, *, worker: int | None = None
    ) -> int:
        if call_id in self._where:
            raise WorkerError(f"call {call_id} already has media", code="invalid_state")
        target = self._workers[worker] if worker is not None and worker < self.count else None
        if target is None or not target.alive:
            alive = [w for w in self._workers if w is not None and w.alive]
            if not alive:
                raise LimitReached("没有可用的媒体进程", code="media_unavailable")
            target = min(alive, key=lambda w: (len(w.calls), w.index))
        target.calls.add(call_id)  # counted now, so concurrent answers spread out
        self._where[call_id] = target
        params = {"call_id": call_id, "dump": dump.to_dict() if dump else None}
        try:
            await self._request(target, "open_call", params)
        except BaseException:
            target.calls.discard(call_id)
            if self._where.get(call_id) is target:
                del self._where[call_id]
            raise
        return target.index

    async def offer(
        self,
        call_id: str,
        participant: str,
        sdp: str,
        tracks: dict[str, str],
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        params = {
            "call_id": call_id,
            "participant": participant,
            "sdp": sdp,
            "tracks": tracks,
            "replace": replace,
        }
        worker = self._worker_of(call_id)
        legs = self._legs.setdefault(call_id, set())
        new = participant not in legs
        if new:  # counted before the worker is asked, so concurrent offers cannot overtake
            if self._per_user[participant] >= self._per_user_cap:
                raise LimitReached(
                    f"{participant} already has {self._per_user[participant]} media connections",
                    limit="max_peer_connections_per_user",
                )
            legs.add(participant)
            self._per_user[participant] += 1
        try:
            answer: dict[str, Any] = await self._request(worker, "offer", params)
        except BaseException:
            if new:
                self._release(call_id, [participant])
            raise
        return answer

    async def candidate(self, call_id: str, participant: str, candidate: dict[str, Any]) -> None:
        params = {"call_id": call_id, "participant": participant, "candidate": candidate}
        await self._request(self._worker_of(call_id), "candidate", params)

    async def needs(self, call_id: str, participant: str) -> dict[str, int]:
        params = {"call_id": call_id, "participant": participant}
        needs: dict[str, int] = await self._request(self._worker_of(call_id), "needs", params)
        return needs

    async def close_call(self, call_id: str) -> None:
        self._release(call_id)
        worker = self._where.pop(call_id, None)
        if worker is None:
            return
        worker.calls.discard(call_id)
        if worker.alive:
            try:
                await self._request(worker, "close_call", {"call_id": call_id})
            except TongbanError:
                log.warning("media worker %d could not close call %s", worker.index, call_id)

    def has_call(self, call_id: str) -> bool:
        return call_id in self._where

    def loads(self) -> list[int]:
        return [len(w.calls) if w is not None and w.alive else -1 for w in self._workers]

    def worker_of(self, call_id: str) -> int | None:
        worker = self._where.get(call_id)
        return worker.index if worker is not None else None

    def pids(self) -> list[int | None]:
        return [w.proc.pid if w is not None and w.alive else None for w in self._workers]

    async def stats(self) -> list[dict[str, Any]]:
        """Every live worker's engine statistics (benchmarks, diagnostics)."""
        out = []
        for worker in self._workers:
            if worker is not None and worker.alive:
                out.append(await self._request(worker, "stats", {}))
        return out

    # -- plumbing ----------------------------------------------------------------------------

    def _release(self, call_id: str, participants: list[str] | None = None) -> None:
        """The per-user count of a call's peer connections given back (all, or some)."""
        legs = self._legs.get(call_id, set())
        for participant in list(legs) if participants is None else participants:
            if participant in legs:
                legs.discard(participant)
                self._per_user[participant] -= 1
                if self._per_user[participant] <= 0:
                    del self._per_user[participant]
        if not legs:
            self._legs.pop(call_id, None)

    def _worker_of(self, call_id: str) -> _Worker:
        worker = self._where.get(call_id)
        if worker is None or not worker.alive:
            raise media_unavailable()
        return worker

    async def _request(
        self,
        worker: _Worker,
        method: str,
        params: dict[str, Any],
        *,
        wait_s: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        if not worker.alive:
            raise media_unavailable()
        request_id = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.pending[request_id] = waiter
        try:
            message = {"id": request_id, "method": method, "params": params}
            worker.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            reply = await asyncio.wait_for(waiter, wait_s)
        except TimeoutError:
            raise WorkerError("媒体进程没有应答", code="media_unavailable") from None
        finally:
            worker.pending.pop(request_id, None)
        if not reply.get("ok"):
            error = dict(reply.get("error") or {})
            code = str(error.pop("code", "media_error"))
            message_text = str(error.pop("message", "媒体进程出错"))
            raise WorkerError(message_text, code=code, **error)
        return reply.get("result")

    async def _read(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if "id" in message:
                    waiter = worker.pending.get(message["id"])
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
                elif message.get("event") == "renegotiate" and self.on_renegotiate is not None:
                    self.on_renegotiate(
                        str(message["call_id"]),
                        str(message["participant"]),
                        dict(message["needs"]),
                    )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("media worker %d sent something unreadable", worker.index)
        if not self._closing:
            self._spawn_task(self._lost(worker))

    async def _lost(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        for waiter in worker.pending.values():
            if not waiter.done():
                waiter.set_exception(media_unavailable())
        if worker.proc.returncode is None:
            worker.proc.send_signal(signal.SIGKILL)
        code = await worker.proc.wait()
        worker.writer.close()
        calls = sorted(worker.calls)
        worker.calls.clear()
        for call_id in calls:
            if self._where.get(call_id) is worker:
                del self._where[call_id]
                self._release(call_id)
        log.error(
            "media worker %d (pid %d) died with exit %s; %d call(s) lost their media",
            worker.index,
            worker.proc.pid,
            code,
            len(calls),
        )
        if calls and self.on_lost is not None:
            try:
                await self.on_lost(calls)
            except Exception:
                log.exception("ending the calls of a dead media worker failed")
        # start it again; a restarted worker that dies again soon after waits longer
        quick = worker.generation > 0 and time.monotonic() - worker.started < 30
        delay = 10.0 if quick else 1.0
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                replacement = await self._spawn(worker.index)
            except Exception:
                log.exception("media worker %d could not be restarted", worker.index)
                delay = min(delay * 2, 60.0)
                continue
            if self._closing:
                await self._stop(replacement)
                return
            replacement.generation = worker.generation + 1
            self._workers[worker.index] = replacement
            self.restarts += 1
            return

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
