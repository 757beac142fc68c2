"""Mass disconnect: python-socketio's manager against ours (signaling/rooms.py), same run.

    .venv/bin/python -m bench.rooms.run --sockets 1000,5000 --repeat 3

N sockets join the namespace as ours do (their own room, ``user:…``, ``session:…``); then
all of them disconnect one after the other, as when a hall's network drops and the node
handles the closes back to back. Prints, per manager, the time for all the disconnects, the
longest single one, and our ratio to the library's (the baseline, measured in the same run).
The managers are driven through their public coroutines (``connect``, ``enter_room``,
``disconnect``) with no network: what is measured is the event loop's own work per close.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

import socketio

from signaling.rooms import Manager

NS = "/"


class _Ids:
    """Stands in for the server: the managers ask it only for fresh ids."""

    def __init__(self) -> None:
        self._n = 0
        self.eio = self

    def generate_id(self) -> str:
        self._n += 1
        return f"sid{self._n:08d}"


async def _populate(manager: Any, sockets: int) -> list[str]:
    manager.server = _Ids()
    sids = []
    for i in range(sockets):
        sid = await manager.connect(f"eio{i:08d}", NS)
        await manager.enter_room(sid, NS, f"user:{i}")
        await manager.enter_room(sid, NS, f"session:{i}")
        sids.append(sid)
    return sids


async def _disconnect_all(manager: Any, sids: list[str]) -> tuple[float, float]:
    longest = 0.0
    start = time.perf_counter()
    for sid in sids:
        t = time.perf_counter()
        manager.pre_disconnect(sid, NS)
        await manager.disconnect(sid, NS)
        longest = max(longest, time.perf_counter() - t)
    total = time.perf_counter() - start
    assert NS not in manager.rooms, "every socket left every room"
    return total, longest


async def _one(kind: str, sockets: int) -> tuple[float, float]:
    manager: Any = socketio.AsyncManager() if kind == "library" else Manager()
    sids = await _populate(manager, sockets)
    gc.collect()
    return await _disconnect_all(manager, sids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", default="1000,5000", help="comma-separated counts")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("sockets  manager   all closes (s)  longest close (ms)  per close (us)")
    for sockets in [int(n) for n in args.sockets.split(",")]:
        results: dict[str, list[tuple[float, float]]] = {"library": [], "indexed": []}
        for _ in range(args.repeat):
            for kind in results:  # alternated, so drift hits both
                results[kind].append(asyncio.run(_one(kind, sockets)))
        medians = {}
        for kind, runs in results.items():
            total = statistics.median(r[0] for r in runs)
            longest = statistics.median(r[1] for r in runs)
            medians[kind] = total
            print(
                f"{sockets:7d}  {kind:8s}  {total:14.3f}  {longest * 1e3:18.3f}"
                f"  {total / sockets * 1e6:14.1f}"
            )
        print(
            f"{sockets:7d}  indexed / library time for all closes: "
            f"{medians['indexed'] / medians['library']:.4f}"
            f" ({medians['library'] / medians['indexed']:.0f}x faster)"
        )


if __name__ == "__main__":
    main()
