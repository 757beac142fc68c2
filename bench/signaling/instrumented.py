"""`tongban serve` with counters for diagnosis (bench only; the server code is untouched).

    .venv/bin/python -m bench.signaling.instrumented serve --port 8080

Wraps `storage.db.create_engine` to count SQL statements and transactions (and
`storage.sqlfast`, whose statements bypass SQLAlchemy's events), and registers a
`gc.callbacks` hook that times every collection. `GET /_bench/stats` returns the counters;
`POST /_bench/gc-freeze` runs `gc.collect(); gc.freeze()` (the NOTES' proposal) so that a run
can compare. `POST /_bench/cprofile?action=start` profiles the event loop's thread with cProfile
until `POST /_bench/cprofile?action=stop&file=F` writes the stats to F (pstats format) and
returns the top functions by own time: where the loop's CPU goes per call, in Python terms
(perf sees only libpython; py-spy misplaces frames run under uvloop). Counting costs a few
microseconds per statement: the headline figures come from the plain server, these from a
separate run.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

STATEMENTS: Counter[str] = Counter()
GC: dict[str, Any] = {
    "count": Counter(),
    "pause_s": Counter(),
    "max_ms": 0.0,
    "over_10ms": 0,
    "long": [],  # the collections over 10 ms: generation, pause, objects collected
}
_gc_started: list[float] = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    pause = time.perf_counter() - _gc_started[0]
    gen = str(info.get("generation"))
    GC["count"][gen] += 1
    GC["pause_s"][gen] += pause
    GC["max_ms"] = max(GC["max_ms"], pause * 1000)
    if pause > 0.010:
        GC["over_10ms"] += 1
        GC["long"].append(
            {
                "gen": info.get("generation"),
                "ms": round(pause * 1000, 1),
                "collected": info.get("collected"),
                "young": gc.get_count(),
            }
        )


def _install() -> None:
    import sqlalchemy as sa

    # experiments on the collector's schedule (TB_BENCH_GC_THRESHOLD="700,10,10" is CPython's)
    if os.environ.get("TB_BENCH_GC_THRESHOLD"):
        gc.set_threshold(*(int(x) for x in os.environ["TB_BENCH_GC_THRESHOLD"].split(",")))

    # experiments on the GIL's switch interval (CPython's is 0.005 s)
    if os.environ.get("TB_BENCH_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(os.environ["TB_BENCH_SWITCH_INTERVAL"]))

    # experiment, not a setting: the loop connection's commits without their fsync
    # (TB_BENCH_DIRECT_SYNC=NORMAL), to bound what moving the fsync off the loop could gain
    if os.environ.get("TB_BENCH_DIRECT_SYNC"):
        from storage.database import Database

        direct = Database.direct
        sync = os.environ["TB_BENCH_DIRECT_SYNC"]

        def relaxed(self: Database) -> Any:
            conn = direct(self)
            if conn is not None:
                conn.execute(f"PRAGMA synchronous={sync}")
            return conn

        Database.direct = relaxed  # type: ignore[method-assign]

    import storage.db
    import web.app as tongban_app

    original = storage.db.create_engine

    def create_engine(url: str, **kwargs: Any) -> Any:
        engine = original(url, **kwargs)

        @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            STATEMENTS["statements"] += 1
            STATEMENTS[statement.split(None, 1)[0].upper()] += 1

        @sa.event.listens_for(engine.sync_engine, "begin")
        def _begin(_conn: Any) -> None:
            STATEMENTS["transactions"] += 1

        @sa.event.listens_for(engine.sync_engine, "checkout")
        def _checkout(*_args: Any) -> None:
            STATEMENTS["checkouts"] += 1

        return engine

    tongban_app.create_engine = create_engine  # type: ignore[attr-defined]

    # statements storage/sqlfast.py runs on the driver connection bypass SQLAlchemy's events
    from storage import sqlfast
    from storage.database import LazyConnection

    def counted(fn: Any, kind: str) -> Any:
        async def wrapper(conn: Any, stmt: Any, params: Any) -> Any:
            # a lazy transaction (storage/database.py) has no driver connection until it
            # needs one: its statements go to the loop's own SQLite connection
            if sqlfast._driver(conn) is not None or isinstance(conn, LazyConnection):
                STATEMENTS["statements"] += 1
                STATEMENTS[kind] += 1
            return await fn(conn, stmt, params)

        return wrapper

    sqlfast.fetch = counted(sqlfast.fetch, "SELECT")  # type: ignore[method-assign]
    sqlfast.change = counted(sqlfast.change, "DML")  # type: ignore[method-assign]
    original_app = tongban_app.create_app

    def create_app(*args: Any, **kwargs: Any) -> web.Application:
        app = original_app(*args, **kwargs)
        if os.environ.get("TB_BENCH_LIBRARY_POLL"):  # A/B: engine.io's own writer wait
            from engineio import async_socket

            from signaling.engineio_internals import ORIGINAL_POLL

            async_socket.AsyncSocket.poll = ORIGINAL_POLL
        app.router.add_get("/_bench/stats", _stats)
        app.router.add_post("/_bench/gc-freeze", _freeze)
        app.router.add_post("/_bench/cprofile", _cprofile)
        if os.environ.get("TB_BENCH_STALL_MS"):
            app.on_startup.append(_watch_stalls)
        return app

    tongban_app.create_app = create_app
    gc.callbacks.append(_on_gc)
    _time_turns()
    _time_requests()


# seconds from a call:request's Socket.IO message reaching the loop (engine.io hands it over)
# to its call:incoming frames queued for the callees' sockets (the handler's emits done):
# the server's own share of the clients' latency, without the clients' loops and the network
REQUESTS: list[float] = []


def _time_requests() -> None:
    from contextvars import ContextVar

    import socketio

    from signaling.service import CallService

    arrived: ContextVar[float] = ContextVar("bench_arrived", default=0.0)
    handle_message = socketio.AsyncServer._handle_eio_message

    async def stamped(self: Any, eio_sid: str, data: Any) -> Any:
        # the handler's task (async_handlers) copies this context, so it sees the stamp
        token = arrived.set(time.perf_counter())
        try:
            return await handle_message(self, eio_sid, data)
        finally:
            arrived.reset(token)

    socketio.AsyncServer._handle_eio_message = stamped  # type: ignore[method-assign]
    request = CallService.request

    async def timed(self: CallService, *args: Any, **kwargs: Any) -> Any:
        answer = await request(self, *args, **kwargs)
        if arrived.get():
            REQUESTS.append(time.perf_counter() - arrived.get())
        return answer

    CallService.request = timed  # type: ignore[method-assign]


ROOT = Path(__file__).resolve().parents[2]
TURNS: dict[str, float] = {
    "count": 0,
    "wait_s": 0.0,
    "hold_s": 0.0,
    "max_wait_ms": 0.0,
    "max_hold_ms": 0.0,
}
LONGEST_HOLD: list[str] = [""]  # where the longest hold since the last reset was taken


def _time_turns() -> None:
    """How long writers wait for SQLite's writer's turn (storage/database.py) and hold it:
    hold_s over the phase's seconds is how busy the single writer is."""
    from contextlib import asynccontextmanager

    from storage.database import Database

    turn = Database._turn

    @asynccontextmanager
    async def timed(self: Database) -> Any:
        asked = time.perf_counter()
        async with turn(self):
            got = time.perf_counter()
            TURNS["count"] += 1
            TURNS["wait_s"] += got - asked
            TURNS["max_wait_ms"] = max(TURNS["max_wait_ms"], (got - asked) * 1000)
            try:
                yield
            finally:
                held = time.perf_counter() - got
                TURNS["hold_s"] += held
                if held * 1000 > TURNS["max_hold_ms"]:  # rare: the stack only then
                    TURNS["max_hold_ms"] = held * 1000
                    LONGEST_HOLD[0] = " < ".join(
                        f"{Path(f.filename).stem}.{f.name}:{f.lineno}"
                        for f in reversed(traceback.extract_stack(limit=14))
                        if str(ROOT) in f.filename and "/bench/" not in f.filename
                    )

    Database._turn = timed  # type: ignore[method-assign]


async def _stats(request: web.Request) -> web.Response:
    collector: dict[str, Any] = {
        "count": dict(GC["count"]),
        "pause_s": dict(GC["pause_s"]),
        "max_ms": GC["max_ms"],
        "over_10ms": GC["over_10ms"],
        "long": GC["long"][-50:],
    }
    if request.query.get("objects"):
        # listing ~10^6 objects blocks the loop for ~0.1 s, and so does counting the frozen
        # ones (CPython walks the list: 80 ms here, TB_BENCH_STALL_MS caught it at the start
        # of every instrumented phase): only when asked, not per phase
        collector["tracked_objects"] = len(gc.get_objects())
        collector["frozen"] = gc.get_freeze_count()
    since = int(request.query.get("requests_since", "-1"))
    answer = web.json_response(
        {
            "sql": dict(STATEMENTS),
            "gc": collector,
            "turns": dict(TURNS) | {"longest_hold_at": LONGEST_HOLD[0]},
            "requests": len(REQUESTS),
            "request_s": REQUESTS[since:] if since >= 0 else [],
        }
    )
    if request.query.get("reset"):
        GC["max_ms"] = 0.0
        GC["over_10ms"] = 0
        TURNS["max_wait_ms"] = 0.0
        TURNS["max_hold_ms"] = 0.0
        LONGEST_HOLD[0] = ""
    return answer


async def _freeze(_request: web.Request) -> web.Response:
    gc.collect()
    gc.freeze()
    return web.json_response({"frozen": gc.get_freeze_count()})


async def _watch_stalls(_app: web.Application) -> None:
    """TB_BENCH_STALL_MS=N: a thread prints the event loop thread's stack to stderr (the
    server's log) whenever the loop has not run a 2 ms tick for N ms: where the stalls are."""
    import asyncio
    import threading
    import traceback

    limit = float(os.environ["TB_BENCH_STALL_MS"]) / 1000
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    last = [time.monotonic()]

    def tick() -> None:
        last[0] = time.monotonic()
        loop.call_later(0.002, tick)

    def watch() -> None:
        reported = 0.0
        while True:
            time.sleep(0.002)
            stalled = time.monotonic() - last[0]
            if stalled > limit and last[0] != reported:
                frame = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_stack(frame)[-12:]) if frame else "?"
                print(f"STALL {stalled * 1000:.0f} ms so far, from monotonic {last[0]:.3f}"
                      f", loop thread at:\n{stack}", file=sys.stderr, flush=True)  # fmt: skip
                reported = last[0]

    tick()
    threading.Thread(target=watch, name="stall-watch", daemon=True).start()


_PROFILE: list[Any] = []


async def _cprofile(request: web.Request) -> web.Response:
    import cProfile
    import io
    import pstats

    action = request.query.get("action", "")
    if action == "start" and not _PROFILE:
        _PROFILE.append(cProfile.Profile())
        _PROFILE[0].enable()  # this (the loop's) thread only
        return web.json_response({"profiling": True})
    if action == "stop" and _PROFILE:
        profile = _PROFILE.pop()
        profile.disable()
        if request.query.get("file"):
            profile.dump_stats(request.query["file"])
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(request.query.get("sort", "tottime")).print_stats(
            int(request.query.get("top", "60"))
        )
        return web.Response(text=out.getvalue())
    return web.json_response({"error": "action=start or action=stop"}, status=400)


def main() -> int:
    _install()
    from tongban.cli import main as tongban_main

    return tongban_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
