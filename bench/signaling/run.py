"""Signaling benchmark: N staff connected over Socket.IO, callers requesting calls at R/s.

    .venv/bin/python -m bench.signaling.run --staff 5000 --rate 100,200,400,800 --seconds 20
    .venv/bin/python -m bench.signaling.run --sweep            # issue 3 and issue 7 points

For each staff count: a fresh data dir (SQLite, or a PostgreSQL database created and dropped
when --database-url is given), `tongban demo`, the benchmark population (dataset.py), then
`tongban serve` as a subprocess. Client processes (never the server's) connect the callers,
then the staff; by default one Node.js process with the npm socket.io-client, as the browser
app speaks (clients.mjs, offering permessage-deflate as Chromium does), or with `--client
python` python-socketio's AsyncClient (clients.py), which costs several times the CPU on the
same cores and emits late (printed: clients CPU, emit lag). `--pin` keeps the server on CPU 0
and the clients on the others, as browsers elsewhere would be. The server's RSS before and
after the staff connect gives the memory per connected staff member. Then one open-loop
phase per rate (and per repeat): each request is followed by call:cancel once a callee saw
its call:incoming. Latency is emit of call:request -> first call:incoming at any callee of
the window, on CLOCK_MONOTONIC in one process.

`--nodes 2` runs a cluster: that many `tongban serve` processes sharing the PostgreSQL database
(--database-url, required) and a Redis database (--redis-url; flushed before and after: give
the benchmark one of its own), each with its own node id and data dir. Every client socket,
caller or staff, goes to the nodes in turn, as a load balancer without sticky sessions would
send them: a window's staff are on both nodes, so the last callee's call:incoming has always
crossed nodes through Redis. Server CPU, run-queue wait and memory are summed over the nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.signaling import clients, dataset
from bench.signaling.node_clients import NodeClients

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SWEEP: list[tuple[int, list[float]]] = [
    (500, [100]),
    (1000, [100]),
    (2000, [100]),
    (5000, [100, 200, 400, 800]),
]


# --- measurements of the server process and the host ----------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def runqueue_wait_s(pid: int) -> float:
    """Seconds the server's event-loop thread was runnable but waiting for a CPU
    (schedstat): the neighbours' share of its latency on a shared machine. (Not summed over
    threads: aiosqlite's come and go with pooled connections, and each wake-up of one waits
    a little for a CPU by design.)"""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan


def postgres_ticks() -> dict[int, int]:
    """utime + stime of every PostgreSQL process on this machine, by pid, and under -1 the
    time of the backends that have exited (the postmaster's children's time, fields 16 and
    17): the database's share of the work. A backend that exits within a phase counts whole."""
    stats = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "postgres":
                stats[int(proc.name)] = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    ticks = {pid: int(f[11]) + int(f[12]) for pid, f in stats.items()}
    for f in stats.values():
        if int(f[1]) not in stats:  # the postmaster (its parent is no PostgreSQL process)
            ticks[-1] = ticks.get(-1, 0) + int(f[13]) + int(f[14])
    return ticks


def host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- database and server ----------------------------------------------------------------------


@contextmanager
def postgres_database(url: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database for one run, dropped afterwards; None for SQLite."""
    if url is None:
        yield None
        return
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or f"tongban_bench_{os.getpid()}"
    admin = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "database": "postgres",
    }

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(**admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))  # fails if it exists: never drop others' data
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def errors_logged(self) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return sum(1 for line in text.splitlines() if " ERROR " in line or "Traceback" in line)


def start_server(env: dict[str, str], data_dir: Path, *, instrument: bool) -> Server:
    port = free_port()
    log = data_dir / "server.log"
    if instrument:
        command = [sys.executable, "-m", "bench.signaling.instrumented"]
    else:
        command = [str(VENV_BIN / "tongban")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_raise_nofile,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError("server not healthy after 90 s")


def bench_stats(
    server: Server, *, reset: bool = False, path: str = "stats", requests_since: int = -1
) -> dict[str, Any]:
    """Counters of the instrumented server (instrumented.py); ``requests_since``: also the
    server-side request times recorded since that many."""
    query = {"reset": "1"} if reset else {}
    if requests_since >= 0:
        query["requests_since"] = str(requests_since)
    url = f"{server.url}/_bench/{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    method = "POST" if path != "stats" else "GET"
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def _cprofile(server: Server, action: str, **query: str) -> str:
    """Starts or stops cProfile in the instrumented server's loop thread (instrumented.py)."""
    url = f"{server.url}/_bench/cprofile?" + urllib.parse.urlencode({"action": action, **query})
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60) as answer:
        return str(answer.read().decode())


# --- one staff count --------------------------------------------------------------------------


@dataclass
class Row:
    staff: int
    rate: float
    repeat: int
    sent: int = 0
    skipped: int = 0
    answered: int = 0
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    cancel_ack: list[float] = field(default_factory=list)
    emit_lag: list[float] = field(default_factory=list)
    expected: int = 0
    delivered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0  # percent of one core
    host_cpu: float = 0.0  # percent of the whole machine
    client_cpu: float = 0.0  # percent of one core, all client processes together
    server_cpu_s: float = 0.0
    db_cpu_s: float = math.nan  # PostgreSQL's processes, when the run uses it
    runq_wait_s: float = 0.0  # server threads runnable but not running, during the phase
    # Node.js clients only: how late their own event loop ran (1 ms timer), worst process
    client_delay_p99_ms: float = math.nan
    client_delay_max_ms: float = math.nan
    seconds: float = 0.0
    connected: int = 0  # sockets still connected at the end of the phase
    # instrumented runs only: per sent request (call:request + call:cancel)
    sql_per_request: float = math.nan
    tx_per_request: float = math.nan
    gc_full: int = 0
    gc_pause_ms: float = math.nan
    gc_max_ms: float = math.nan

    def summary(self) -> dict[str, Any]:
        ms = 1000.0
        return {
            "staff": self.staff,
            "rate": self.rate,
            "repeat": self.repeat,
            "sent": self.sent,
            "skipped": self.skipped,
            "connected_at_end": self.connected,
            "answered": self.answered,
            "p50_ms": pct(self.first, 50) * ms,
            "p90_ms": pct(self.first, 90) * ms,
            "p99_ms": pct(self.first, 99) * ms,
            "max_ms": max(self.first, default=math.nan) * ms,
            "last_p99_ms": pct(self.last, 99) * ms,
            "ack_p50_ms": pct(self.ack, 50) * ms,
            "ack_p99_ms": pct(self.ack, 99) * ms,
            "cancel_ack_p99_ms": pct(self.cancel_ack, 99) * ms,
            "emit_lag_p99_ms": pct(self.emit_lag, 99) * ms,
            "client_loop_delay_p99_ms": self.client_delay_p99_ms,
            "client_loop_delay_max_ms": self.client_delay_max_ms,
            "delivered": self.delivered,
            "expected": self.expected,
            "errors": dict(self.errors),
            "server_cpu_pct": self.server_cpu,
            "host_cpu_pct": self.host_cpu,
            "client_cpu_pct": self.client_cpu,
            "server_cpu_ms_per_request": 1000 * self.server_cpu_s / max(1, self.sent),
            "db_cpu_ms_per_request": 1000 * self.db_cpu_s / max(1, self.sent),
            "server_runq_wait_ms_per_s": 1000 * self.runq_wait_s / max(1e-9, self.seconds),
            "sql_per_request": self.sql_per_request,
            "tx_per_request": self.tx_per_request,
            "gc_gen2": self.gc_full,
            "gc_pause_ms": self.gc_pause_ms,
            "gc_max_pause_ms": self.gc_max_ms,
        }


@dataclass
class Memory:
    staff: int
    connected: int
    rss_before_kib: int
    rss_after_kib: int
    connect_s: float
    connect_errors: dict[str, int]

    @property
    def kib_per_staff(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(1, self.connected)


class Pipe(Protocol):
    """A client process's end: a multiprocessing Connection, or NodeClients."""

    def send(self, command: Any, /) -> None: ...
    def recv(self) -> Any: ...
    def close(self) -> None: ...


def _ask(pipes: list[Pipe], command: tuple[Any, ...]) -> list[dict[str, Any]]:
    for pipe in pipes:
        pipe.send(command)
    return [pipe.recv() for pipe in pipes]


def run_staff_count(
    args: argparse.Namespace, staff: int, rates: list[float]
) -> tuple[Memory, list[Row]]:
    callers = args.callers or max(100, math.ceil(2 * max(rates)))
    data_dir = Path(tempfile.mkdtemp(prefix="tongban-bench-sig-"))
    servers: list[Server] = []
    procs: list[Any] = []
    pipes: list[Pipe] = []
    try:
        with ExitStack() as stack:
            pg_url = stack.enter_context(postgres_database(args.database_url))
            # the servers stop before their database is dropped (callbacks run last-in first)
            stack.callback(lambda: [x.stop() for x in servers])
            env = {**os.environ, "TONGBAN_DATA_DIR": str(data_dir)}
            if pg_url:
                env["TONGBAN_DATABASE_URL"] = pg_url
            db_url = pg_url or f"sqlite+aiosqlite:///{data_dir / 'tongban.sqlite3'}"
            t0 = time.monotonic()
            subprocess.run(
                [str(VENV_BIN / "tongban"), "demo"], cwd=ROOT, env=env, check=True,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            data = asyncio.run(dataset.build(db_url, staff, args.per_window, callers))
            say(f"[{staff}] data ready in {time.monotonic() - t0:.1f} s "
                f"({len(data.windows)} windows, {callers} callers)")  # fmt: skip
            if args.nodes > 1:
                _flush_redis(args.redis_url)
            for n in range(1, args.nodes + 1):
                node_env, node_dir = env, data_dir
                if args.nodes > 1:
                    node_dir = data_dir / f"node-{n}"
                    node_dir.mkdir()
                    node_env = env | {
                        "TONGBAN_DATA_DIR": str(node_dir),
                        "TONGBAN_REDIS_URL": args.redis_url,
                        "TONGBAN_NODE_ID": f"bench-{n}",
                    }
                servers.append(start_server(node_env, node_dir, instrument=args.instrument))
                if args.pin:
                    _pin(servers[-1].proc.pid, SERVER_CPUS)
                say(f"[{staff}] server pid {servers[-1].proc.pid} on port {servers[-1].port}")
            server = servers[0]
            urls = [x.url for x in servers]
            ctx = mp.get_context("spawn")
            for k in range(args.procs):
                shares = [
                    clients.WindowShare(w.case_ids, w.staff_tokens)
                    for w in data.windows[k :: args.procs]
                ]
                mine_callers = data.caller_tokens[k :: args.procs]
                if args.client == "node":
                    child = NodeClients(urls, shares, mine_callers)
                    procs.append(child)
                    pipes.append(child)
                    if args.pin:
                        _pin(child.pid, CLIENT_CPUS)
                    continue
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(
                    target=clients.main, args=(theirs, urls, shares, mine_callers), daemon=True
                )
                proc.start()
                if args.pin and proc.pid is not None:
                    _pin(proc.pid, CLIENT_CPUS)
                procs.append(proc)
                pipes.append(mine)
            answers = _ask(pipes, ("connect", "callers", args.connect_concurrency))
            say(f"[{staff}] callers connected: {sum(a['connected'] for a in answers)}/{callers}")
            time.sleep(2)
            before = sum(rss_kib(x.proc.pid) for x in servers)
            t1 = time.monotonic()
            answers = _ask(pipes, ("connect", "staff", args.connect_concurrency))
            connect_s = time.monotonic() - t1
            time.sleep(3)
            after = sum(rss_kib(x.proc.pid) for x in servers)
            errors: Counter[str] = Counter()
            for a in answers:
                errors.update(a["errors"])
            memory = Memory(
                staff, sum(a["connected"] for a in answers), before, after, connect_s, dict(errors)
            )
            say(f"[{staff}] staff connected: {memory.connected}/{staff} in {connect_s:.1f} s, "
                f"RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB "
                f"({memory.kib_per_staff:.1f} KiB/staff)")  # fmt: skip
            if args.gc_freeze:
                frozen = bench_stats(server, path="gc-freeze")["frozen"]
                say(f"[{staff}] server: gc.freeze() of {frozen} objects")
            settle = args.settle - (time.monotonic() - server.started)
            if settle > 0:
                say(f"[{staff}] waiting {settle:.0f} s (--settle: {args.settle:g} s after start)")
                time.sleep(settle)
            if args.warmup > 0:
                _phase(pipes, servers, staff, 20.0, args.warmup, 0, args)
            rows = []
            for rate in rates:
                for repeat in range(1, args.repeat + 1):
                    row = _phase(pipes, servers, staff, rate, args.seconds, repeat, args)
                    rows.append(row)
                    s = row.summary()
                    say(f"[{staff}] {rate:g}/s #{repeat}: p50 {s['p50_ms']:.1f} p99 "
                        f"{s['p99_ms']:.1f} max {s['max_ms']:.1f} ms, server CPU "
                        f"{s['server_cpu_pct']:.0f} % "
                        f"({s['server_cpu_ms_per_request']:.1f} ms/req), "
                        + (f"PostgreSQL {s['db_cpu_ms_per_request']:.1f} ms/req, "
                           if not math.isnan(row.db_cpu_s) else "")
                        + f"sockets {row.connected}, errors {s['errors']}, "
                        f"skipped {s['skipped']}")  # fmt: skip
                    time.sleep(args.pause)
            _ask(pipes, ("close",))
            for x in servers:
                logged = x.errors_logged()
                if logged:
                    say(f"[{staff}] server logged {logged} error line(s): see {x.log}")
            return memory, rows
    finally:
        for pipe in pipes:
            pipe.close()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        if args.nodes > 1:  # the servers stopped as the database context closed
            _flush_redis(args.redis_url)
        if args.keep:
            say(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


SERVER_CPUS = {0}
CLIENT_CPUS = set(range(1, os.cpu_count() or 2)) or {0}


def _pin(pid: int, cpus: set[int]) -> None:
    """--pin: the server on CPU 0 (every thread of it), the client processes on the others,
    as a server would run beside browsers elsewhere; PostgreSQL and Redis are not moved."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


def _flush_redis(url: str) -> None:
    """Empties the benchmark's Redis database (presence, node keys, media loads of a run)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _phase(
    pipes: list[Pipe],
    servers: list[Server],
    staff: int,
    rate: float,
    seconds: float,
    repeat: int,
    args: argparse.Namespace,
) -> Row:
    start_at = time.monotonic() + 0.5
    for pipe in pipes:
        pipe.send(("phase", rate / len(pipes), seconds, start_at))
    time.sleep(max(0.0, start_at - time.monotonic()))
    server = servers[0]  # the one --instrument, --profile and --cprofile look into
    stats0 = bench_stats(server, reset=True) if args.instrument else None
    cpu0, host0 = sum(cpu_ticks(x.proc.pid) for x in servers), host_ticks()
    db0 = postgres_ticks() if args.database_url else None
    wait0 = sum(runqueue_wait_s(x.proc.pid) for x in servers)
    spy = _py_spy(args, server, staff, rate, repeat, seconds)
    if args.cprofile:
        _cprofile(server, "start")
    time.sleep(max(0.0, start_at + seconds - time.monotonic()))
    cpu1, host1 = sum(cpu_ticks(x.proc.pid) for x in servers), host_ticks()
    db1 = postgres_ticks() if db0 is not None else None
    wait1 = sum(runqueue_wait_s(x.proc.pid) for x in servers)
    if args.cprofile:
        folder = Path(args.cprofile).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        pstats_file = folder / f"staff{staff}-rate{rate:g}-{repeat}.pstats"
        say(f"{rate:g}/s: cProfile of the loop thread ({pstats_file.name}):")
        print(_cprofile(server, "stop", file=str(pstats_file), top="30"), flush=True)
    answers = [pipe.recv() for pipe in pipes]
    if spy is not None:
        spy.wait(30)
    if args.instrument:  # to place the server's STALL lines (TB_BENCH_STALL_MS) in phases
        say(f"{rate:g}/s #{repeat}: monotonic {start_at:.3f} to {start_at + seconds:.3f}")
    row = Row(staff, rate, repeat)
    row.server_cpu = 100.0 * (cpu1 - cpu0) / CLK_TCK / seconds
    row.server_cpu_s = (cpu1 - cpu0) / CLK_TCK
    if db0 is not None and db1 is not None:
        row.db_cpu_s = sum(t - db0.get(pid, 0) for pid, t in db1.items()) / CLK_TCK
    row.runq_wait_s = wait1 - wait0
    row.seconds = seconds
    sent = sum(a["sent"] for a in answers)
    if stats0 is not None:
        # after the answers: every request of the phase has been cancelled by now
        stats1 = bench_stats(server, requests_since=stats0.get("requests", 0))
        inside = sorted(stats1.get("request_s", []))
        if inside:
            say(
                f"{rate:g}/s: server side, call:request reaching the loop -> its call:incoming "
                f"queued: p50 {1000 * pct(inside, 50):.1f} p99 {1000 * pct(inside, 99):.1f} "
                f"max {1000 * inside[-1]:.1f} ms ({len(inside)} requests)"
            )
        sql0, sql1 = stats0["sql"], stats1["sql"]
        row.sql_per_request = (sql1["statements"] - sql0["statements"]) / max(1, sent)
        row.tx_per_request = (sql1["checkouts"] - sql0["checkouts"]) / max(1, sent)
        gc0, gc1 = stats0["gc"], stats1["gc"]
        row.gc_full = gc1["count"].get("2", 0) - gc0["count"].get("2", 0)
        row.gc_pause_ms = 1000 * sum(
            gc1["pause_s"].get(g, 0) - gc0["pause_s"].get(g, 0) for g in ("0", "1", "2")
        )
        row.gc_max_ms = gc1["max_ms"]
        long = [c for c in gc1.get("long", []) if c not in gc0.get("long", [])]
        if long:  # which generation, how many objects it freed
            say(f"{rate:g}/s: collections over 10 ms: {long}")
        t0, t1 = stats0.get("turns"), stats1.get("turns")
        if t0 and t1 and t1["count"] > t0["count"]:  # SQLite's writer's turn
            turns = t1["count"] - t0["count"]
            say(
                f"{rate:g}/s: writer's turn {turns / seconds:.0f}/s, held "
                f"{100 * (t1['hold_s'] - t0['hold_s']) / seconds:.0f} % of the phase "
                f"({1000 * (t1['hold_s'] - t0['hold_s']) / turns:.2f} ms each), wait "
                f"{1000 * (t1['wait_s'] - t0['wait_s']) / turns:.1f} ms mean, "
                f"max {t1['max_wait_ms']:.0f} ms; longest hold {t1['max_hold_ms']:.1f} ms at "
                f"{t1['longest_hold_at']}"
            )
    row.host_cpu = 100.0 * (host1[0] - host0[0]) / max(1, host1[1] - host0[1])
    for a in answers:
        row.sent += a["sent"]
        row.skipped += a["skipped"]
        row.answered += len(a["first"])
        row.first += a["first"]
        row.last += a["last"]
        row.ack += a["ack"]
        row.cancel_ack += a["cancel_ack"]
        row.emit_lag += a["emit_lag"]
        if "loop_delay_max_ms" in a:  # the worst client process
            row.client_delay_p99_ms = _worst(row.client_delay_p99_ms, a["loop_delay_p99_ms"])
            row.client_delay_max_ms = _worst(row.client_delay_max_ms, a["loop_delay_max_ms"])
        row.expected += a["expected"]
        row.delivered += a["delivered"]
        row.errors.update(a["errors"])
        row.client_cpu += 100.0 * a["cpu_s"] / seconds
        row.connected += a["connected"]
    return row


def _worst(so_far: float, value: float) -> float:
    return value if math.isnan(so_far) else max(so_far, value)


def _py_spy(
    args: argparse.Namespace, server: Server, staff: int, rate: float, repeat: int, seconds: float
) -> subprocess.Popen[bytes] | None:
    """Optionally sample the server during a phase (py-spy must be installed in the venv)."""
    if not args.profile or repeat != 1:
        return None
    out = Path(args.profile) / f"server-{staff}-{rate:g}.{args.profile_format}"
    out.parent.mkdir(parents=True, exist_ok=True)
    ext = {"flamegraph": "flamegraph", "speedscope": "speedscope", "txt": "raw"}
    return subprocess.Popen(
        [str(VENV_BIN / "py-spy"), "record", "--pid", str(server.proc.pid), "--duration",
         str(max(1, int(seconds) - 1)), "--rate", "200", "--nonblocking", "--format",
         ext[args.profile_format], "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# --- output -----------------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _f(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def table(memories: list[Memory], rows: list[Row]) -> str:
    instrumented = any(not math.isnan(r.sql_per_request) for r in rows)
    out = [
        "| staff | connected | connect s | server RSS before → after (MiB) | KiB per staff |",
        "|---:|---:|---:|---|---:|",
    ]
    for m in memories:
        out.append(
            f"| {m.staff} | {m.connected} | {m.connect_s:.0f} | {m.rss_before_kib / 1024:.0f} → "
            f"{m.rss_after_kib / 1024:.0f} | {m.kib_per_staff:.1f} |"
        )
    out += [
        "",
        "| staff | req/s | run | sent | answered | p50 | p90 | p99 | max | last-callee p99 "
        "| ack p50 | ack p99 | cancel-ack p99 | errors | skipped | server CPU % "
        "| server CPU ms/req | PostgreSQL CPU ms/req | loop run-queue wait ms/s | clients CPU % "
        "| host CPU % | emit lag p99 | client loop delay p99 / max |"
        + (" SQL/req | conn/req | gen2 GCs | GC ms | GC max ms |" if instrumented else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:"
        "|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" * 5 if instrumented else ""),
    ]
    for row in rows:
        s = row.summary()
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "0"
        out.append(
            f"| {row.staff} | {row.rate:g} | {row.repeat} | {s['sent']} | {s['answered']} "
            f"| {_f(s['p50_ms'])} | {_f(s['p90_ms'])} | {_f(s['p99_ms'])} | {_f(s['max_ms'])} "
            f"| {_f(s['last_p99_ms'])} | {_f(s['ack_p50_ms'])} | {_f(s['ack_p99_ms'])} "
            f"| {_f(s['cancel_ack_p99_ms'])} | {errors} | {s['skipped']} "
            f"| {s['server_cpu_pct']:.0f} | {_f(s['server_cpu_ms_per_request'])} "
            f"| {_f(s['db_cpu_ms_per_request'])} | {_f(s['server_runq_wait_ms_per_s'])} "
            f"| {s['client_cpu_pct']:.0f} | {s['host_cpu_pct']:.0f} "
            f"| {_f(s['emit_lag_p99_ms'])} "
            f"| {_f(s['client_loop_delay_p99_ms'])} / {_f(s['client_loop_delay_max_ms'])} |"
            + (
                f" {_f(s['sql_per_request'])} | {_f(s['tx_per_request'])} | {s['gc_gen2']} "
                f"| {_f(s['gc_pause_ms'])} | {_f(s['gc_max_pause_ms'])} |"
                if instrumented
                else ""
            )
        )
    out.append("")
    out.append("Latencies in ms: emit of call:request -> first call:incoming at a callee of the "
               "window (p50..max), -> call:incoming at the last online callee (last-callee), "
               "-> ack of call:request, and call:cancel -> its ack.")  # fmt: skip
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.signaling.run", description=__doc__.split("\n")[0])
    parser.add_argument("--staff", default="1000", help="staff counts, comma-separated")
    parser.add_argument("--rate", default="100", help="requests per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one phase")
    parser.add_argument("--repeat", type=int, default=1, help="phases per rate (the spread)")
    parser.add_argument("--sweep", action="store_true", help="500/1000/2000 at 100/s, 5000 at "
                        "100/200/400/800/s (overrides --staff and --rate)")  # fmt: skip
    parser.add_argument("--per-window", type=int, default=10, help="staff per home window")
    parser.add_argument("--callers", type=int, default=0, help="default: 2 x the highest rate")
    parser.add_argument(
        "--procs",
        type=int,
        default=0,
        help="client processes (default: 1 with --client node, 2 with python)",
    )
    parser.add_argument("--client", choices=["node", "python"], default="node",
                        help="node: clients.mjs with the npm socket.io-client (needs `npm ci`); "
                        "python: clients.py with python-socketio's AsyncClient")  # fmt: skip
    parser.add_argument("--connect-concurrency", type=int, default=50, help="per client process")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at 20/s, not reported")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between phases")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds after the server's start before the first phase (its "
                        "first report rollup runs 120 s after start)")  # fmt: skip
    parser.add_argument("--database-url", default=None,
                        help="postgresql+asyncpg://user@host:port[/name]: a database is created "
                        "(name or tongban_bench_<pid>, must not exist) and dropped")  # fmt: skip
    parser.add_argument(
        "--instrument",
        action="store_true",
        help="serve through bench.signaling.instrumented: SQL and GC counters",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="with --instrument: gc.freeze() in the server once staff are in",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on CPU 0, the client processes on the other CPUs",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="cluster nodes sharing PostgreSQL and Redis (needs --database-url)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9",
                        help="with --nodes > 1: a Redis database for the benchmark alone, "
                        "flushed before and after")  # fmt: skip
    parser.add_argument("--profile", default="", help="folder: py-spy the server in each phase")
    parser.add_argument("--cprofile", default="",
                        help="folder, with --instrument: cProfile the loop thread in each "
                        "phase (it slows the server: where time goes, not latency)")  # fmt: skip
    parser.add_argument("--profile-format", default="flamegraph",
                        choices=["flamegraph", "speedscope", "txt"])  # fmt: skip
    parser.add_argument("--max-minutes", type=float, default=45.0, help="hard time limit")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (server.log)")
    args = parser.parse_args(argv)
    if args.gc_freeze and not args.instrument:
        parser.error("--gc-freeze needs --instrument")
    if args.cprofile and not args.instrument:
        parser.error("--cprofile needs --instrument")
    if args.nodes > 1 and not args.database_url:
        parser.error("--nodes > 1 needs --database-url: the nodes share PostgreSQL")
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if args.procs < 1:
        args.procs = 1 if args.client == "node" else 2
    if args.sweep:
        plan = SWEEP
    else:
        rates = [float(r) for r in args.rate.split(",")]
        plan = [(int(n), rates) for n in args.staff.split(",")]

    def out_of_time(_sig: int, _frame: Any) -> None:
        raise TimeoutError(f"--max-minutes {args.max_minutes} reached")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.max_minutes * 60))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _raise_nofile()
    memories: list[Memory] = []
    rows: list[Row] = []
    try:
        for staff, rates in plan:
            memory, got = run_staff_count(args, staff, rates)
            memories.append(memory)
            rows += got
    finally:
        signal.alarm(0)
        if memories:
            print(table(memories, rows))
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "memory": [m.__dict__ | {"kib_per_staff": m.kib_per_staff}
                                   for m in memories],
                        "phases": [r.summary() for r in rows],
                    },
                    indent=1,
                )
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
