"""How long the report rollup holds up a node's event loop and its database writers.

    .venv/bin/python -m bench.report.stalls --staff 5000 --runs 2

A node rolls up the report two minutes after it starts and hourly (oversight/http.py); the
first run after a month of no rollup computes every finished day. Meanwhile the node serves
calls, so what matters is not how long the rollup takes but how long it keeps others
waiting. For each run: a fresh SQLite database (`tongban demo` plus the signaling
benchmark's population of ``--staff`` staff, bench/signaling/dataset.py), then
``refresh_rollup`` with two probes running beside it in the same event loop:

- the loop: a task sleeping 1 ms in a loop; each wake-up later than 5 ms is a stall;
- the writer: a task committing a one-row write every 10 ms through ``Database.write()`` when
  the code has it (else ``begin()``), as the call path does; the time each waits;
- where the code has them, the server's background WAL checkpoints, once a second.

Prints the rollup's time, the loop's stalls (count over 10 ms, longest) and the writer's waits
(p50, p99, longest). Runs against whatever code is importable: PYTHONPATH set to an older
checkout measures that one with the same harness.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


async def _measure(db_url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    from directory.service import DirectoryService
    from oversight.report import refresh_rollup
    from storage import schema as s
    from storage.database import Database
    from storage.db import create_engine
    from tongban.clock import SystemClock

    try:  # as the server opens it (storage/db.py), where the code has background checkpoints
        db = Database(create_engine(db_url, background_checkpoints=True))
    except TypeError:
        db = Database(create_engine(db_url))
    snap = await DirectoryService(db, SystemClock(), calendar_fallback="weekdays").reload()
    stalls: list[float] = []
    waits: list[float] = []
    done = asyncio.Event()

    async def loop_probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            late = (time.perf_counter() - t - 0.001) * 1000
            if late > 5:
                stalls.append(late)

    async def writer_probe() -> None:
        write = getattr(db, "write", db.begin)
        row = {"at": datetime.now(UTC), "actor": "bench", "action": "bench", "result": "ok"}
        while not done.is_set():
            t = time.perf_counter()
            async with write() as conn:
                await conn.execute(sa.insert(s.audit_log).values(**row))
            waits.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.01)

    async def checkpoints() -> None:  # as web/app.py runs them
        while not done.is_set():
            await asyncio.sleep(1.0)
            await db.checkpoint()

    probes = [asyncio.create_task(loop_probe()), asyncio.create_task(writer_probe())]
    if hasattr(db, "checkpoint"):
        probes.append(asyncio.create_task(checkpoints()))
    await asyncio.sleep(0.5)  # the probes' own baseline
    t0 = time.perf_counter()
    await refresh_rollup(db, snap, datetime.now(UTC))
    took = time.perf_counter() - t0
    done.set()
    await asyncio.gather(*probes)
    await db.close()
    return {
        "rollup_s": took,
        "stalls_over_10ms": sum(1 for x in stalls if x > 10),
        "longest_stall_ms": max(stalls, default=0.0),
        "write_p50_ms": pct(waits, 50),
        "write_p99_ms": pct(waits, 99),
        "write_max_ms": max(waits, default=0.0),
        "writes": len(waits),
    }


def one_run(staff: int) -> dict[str, Any]:
    from bench.signaling import dataset

    data_dir = Path(tempfile.mkdtemp(prefix="tongban-bench-stalls-"))
    try:
        env = {**os.environ, "TONGBAN_DATA_DIR": str(data_dir)}
        subprocess.run([str(VENV_BIN / "tongban"), "demo"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        url = f"sqlite+aiosqlite:///{data_dir / 'tongban.sqlite3'}"
        asyncio.run(dataset.build(url, staff, 10, 100))
        return asyncio.run(_measure(url))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.report.stalls", description=__doc__.split("\n")[0])
    parser.add_argument("--staff", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    print("| run | rollup s | loop stalls > 10 ms | longest stall ms | write wait p50 / p99 / "
          "max ms | writes |")  # fmt: skip
    print("|---:|---:|---:|---:|---|---:|")
    for n in range(1, args.runs + 1):
        r = one_run(args.staff)
        print(f"| {n} | {r['rollup_s']:.2f} | {r['stalls_over_10ms']} | "
              f"{r['longest_stall_ms']:.0f} | {r['write_p50_ms']:.1f} / {r['write_p99_ms']:.1f} / "
              f"{r['write_max_ms']:.0f} | {r['writes']} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
