"""One client process: Socket.IO connections for a share of the windows (all their staff)
and a share of the callers, who only call windows held in this same process.

So the time from emitting ``call:request`` to the first ``call:incoming`` at a callee is
read on one clock in one process (``time.monotonic``, CLOCK_MONOTONIC, which every process
on the machine shares; the coordinator schedules phases on it too).

Commands arrive on a pipe as tuples; every command is answered with one dict.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import socketio

COOKIE = "tongban_session"
TIMEOUT = 10.0  # seconds an ack or an incoming may take before it counts as an error


@dataclass
class WindowShare:
    case_ids: list[int]
    staff_tokens: list[str]


@dataclass
class Phase:
    """What one process saw during one rate phase."""

    sent: int = 0
    skipped: int = 0  # no free caller: the request could not be sent (reported)
    incoming_first: list[float] = field(default_factory=list)  # seconds, per answered request
    incoming_last: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    cancel_ack: list[float] = field(default_factory=list)
    emit_lag: list[float] = field(default_factory=list)  # how late the client emitted
    expected_deliveries: int = 0
    deliveries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0


class Worker:
    def __init__(
        self, urls: list[str], windows: list[WindowShare], caller_tokens: list[str]
    ) -> None:
        self.urls = urls  # the nodes: sockets go to each in turn
        self._sockets = 0
        self.windows = windows
        self.caller_tokens = caller_tokens
        self.staff: list[socketio.AsyncClient] = []
        self.callers: list[socketio.AsyncClient] = []
        self.free: list[socketio.AsyncClient] = []
        # call id -> monotonic times at which callees got call:incoming
        self.seen: dict[str, list[float]] = {}
        self.first: dict[str, asyncio.Future[float]] = {}
        self.connect_errors: Counter[str] = Counter()

    # --- connections ------------------------------------------------------------------

    def _first(self, call_id: str) -> asyncio.Future[float]:
        fut = self.first.get(call_id)
        if fut is None:
            fut = self.first[call_id] = asyncio.get_running_loop().create_future()
        return fut

    def _on_incoming(self, data: dict[str, Any]) -> None:
        now = time.monotonic()
        call_id = data["call_id"]
        self.seen.setdefault(call_id, []).append(now)
        fut = self._first(call_id)
        if not fut.done():
            fut.set_result(now)

    async def _connect(self, token: str, *, callee: bool, sem: asyncio.Semaphore) -> None:
        client = socketio.AsyncClient(reconnection=False)
        if callee:

            async def incoming(data: dict[str, Any]) -> None:
                self._on_incoming(data)

            client.on("call:incoming", incoming)
        url = self.urls[self._sockets % len(self.urls)]
        self._sockets += 1
        async with sem:
            try:
                await client.connect(
                    url,
                    headers={"Cookie": f"{COOKIE}={token}"},
                    transports=["websocket"],
                    wait_timeout=30,
                )
            except Exception as err:  # counted and reported, the run goes on
                self.connect_errors[type(err).__name__ + ": " + str(err)[:80]] += 1
                return
        (self.staff if callee else self.callers).append(client)

    async def connect(self, who: str, concurrency: int) -> dict[str, Any]:
        started = time.monotonic()
        sem = asyncio.Semaphore(concurrency)
        if who == "callers":
            tokens = [(t, False) for t in self.caller_tokens]
        else:
            tokens = [(t, True) for w in self.windows for t in w.staff_tokens]
        await asyncio.gather(*(self._connect(t, callee=c, sem=sem) for t, c in tokens))
        if who == "callers":
            self.free = list(self.callers)
        # long-lived objects out of the collector's way, as a busy client would do
        gc.collect()
        gc.freeze()
        return {
            "connected": len(self.callers if who == "callers" else self.staff),
            "wanted": len(tokens),
            "seconds": time.monotonic() - started,
            "errors": dict(self.connect_errors),
        }

    # --- one request ------------------------------------------------------------------

    async def _request(self, caller: socketio.AsyncClient, case_id: int, ph: Phase) -> None:
        t0 = time.monotonic()
        call_id: str | None = None
        try:
            try:
                ack = await caller.call("call:request", {"case_id": case_id}, timeout=TIMEOUT)
            except socketio.exceptions.TimeoutError:
                ph.errors["request_ack_timeout"] += 1
                return
            except socketio.exceptions.SocketIOError as err:  # e.g. the socket was dropped
                ph.errors["request:" + type(err).__name__] += 1
                return
            ph.ack.append(time.monotonic() - t0)
            if not ack.get("ok"):
                error = ack.get("error", {})
                ph.errors["request:" + str(error.get("code"))] += 1
                call_id = error.get("call_id")  # call_already_active: cancel it below
                return
            call_id = ack["call_id"]
            ph.expected_deliveries += ack.get("online", 0)
            try:
                first = await asyncio.wait_for(asyncio.shield(self._first(call_id)), TIMEOUT)
            except TimeoutError:
                ph.errors["no_incoming"] += 1
            else:
                ph.incoming_first.append(first - t0)
            seen = self.seen.get(call_id, [])
            if seen:
                ph.incoming_last.append(max(seen) - t0)
        finally:
            if call_id is not None:
                t1 = time.monotonic()
                try:
                    done = await caller.call("call:cancel", {"call_id": call_id}, timeout=TIMEOUT)
                    ph.cancel_ack.append(time.monotonic() - t1)
                    if not done.get("ok"):
                        ph.errors["cancel:" + str(done.get("error", {}).get("code"))] += 1
                except socketio.exceptions.TimeoutError:
                    ph.errors["cancel_ack_timeout"] += 1
                except socketio.exceptions.SocketIOError as err:
                    ph.errors["cancel:" + type(err).__name__] += 1
                ph.deliveries += len(self.seen.get(call_id, []))
                self.first.pop(call_id, None)
                # late deliveries of this call are not counted (the phase ends by then)
                self.seen.pop(call_id, None)
            self.free.append(caller)

    async def phase(self, rate: float, seconds: float, start_at: float) -> dict[str, Any]:
        """Open loop: requests at evenly spaced instants whatever the answers take."""
        ph = Phase()
        cpu0 = _cpu()
        delay = start_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks: list[asyncio.Task[None]] = []
        count = round(rate * seconds)  # rate 0: an idle phase (background CPU of the sockets)
        windows = [w for w in self.windows if w.case_ids and w.staff_tokens]

        def case_for(i: int) -> int:
            # consecutive requests go to different windows, each window's cases in turn
            window = windows[i % len(windows)]
            return window.case_ids[(i // len(windows)) % len(window.case_ids)]

        for i in range(count):
            due = start_at + i / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            ph.emit_lag.append(max(0.0, time.monotonic() - due))
            if not self.free or not windows:
                ph.skipped += 1
                continue
            caller = self.free.pop()
            ph.sent += 1
            tasks.append(asyncio.create_task(self._request(caller, case_for(i), ph)))
        if count == 0:
            await asyncio.sleep(max(0.0, start_at + seconds - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks, timeout=3 * TIMEOUT + 5)
        ph.cpu_s = _cpu() - cpu0
        return {
            "sent": ph.sent,
            "skipped": ph.skipped,
            "first": ph.incoming_first,
            "last": ph.incoming_last,
            "ack": ph.ack,
            "cancel_ack": ph.cancel_ack,
            "emit_lag": ph.emit_lag,
            "expected": ph.expected_deliveries,
            "delivered": ph.deliveries,
            "errors": dict(ph.errors),
            "cpu_s": ph.cpu_s,
            "connected": sum(1 for c in self.staff + self.callers if c.connected),
        }

    async def close(self) -> dict[str, Any]:
        everyone = self.staff + self.callers
        for start in range(0, len(everyone), 200):
            await asyncio.gather(
                *(c.disconnect() for c in everyone[start : start + 200]), return_exceptions=True
            )
        return {"closed": len(everyone)}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(pipe: Connection, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        name = command[0]
        if name == "connect":
            pipe.send(await worker.connect(command[1], command[2]))
        elif name == "phase":
            pipe.send(await worker.phase(command[1], command[2], command[3]))
        elif name == "close":
            pipe.send(await worker.close())
            return
        else:
            pipe.send({"error": f"unknown command {name}"})


def main(
    pipe: Connection, urls: list[str], windows: list[WindowShare], caller_tokens: list[str]
) -> None:
    """Entry point of a client process (multiprocessing, spawn)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(pipe, Worker(urls, windows, caller_tokens)))
