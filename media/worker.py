"""A media worker process: one :class:`~media.host.LocalMediaHost` on its own event loop.

Started by :class:`media.workers.WorkerPool` as ``python -m media.worker --fd N --index I``;
``N`` is its end of a Unix socket pair. The protocol is one JSON object per line:

- first line from the parent: ``{"settings": {...}}`` (ICE servers may hold TURN credentials,
  so they never go on the command line); the worker answers ``{"event": "ready"}``;
- requests ``{"id", "method", "params"}`` with the methods of :class:`MediaHost` plus
  ``stats`` and ``shutdown``; replies ``{"id", "ok": true, "result"}`` or
  ``{"id", "ok": false, "error": {"code", "message", ...}}``;
- events from the worker: ``{"event": "renegotiate", "call_id", "participant", "needs"}``.

The worker ignores SIGINT (a Ctrl-C at the terminal reaches the whole process group; the
parent decides when media stops) and leaves when its socket closes: a parent that dies takes
its workers with it, and their dumps stay on disk for the recorder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
from typing import Any

from media.engine import MediaLimits, MediaSettings
from media.host import DumpSpec, LocalMediaHost
from tongban.errors import TongbanError

log = logging.getLogger("media.worker")

LINE_LIMIT = 1 << 20  # an SDP is at most 60 kB; room for a stats reply


def settings_to_dict(settings: MediaSettings) -> dict[str, Any]:
    limits = settings.limits
    return {
        "ice_servers": settings.ice_servers,
        "host_addresses": settings.host_addresses,
        "limits": {
            "max_peer_connections": limits.max_peer_connections,
            "max_peer_connections_per_user": limits.max_peer_connections_per_user,
            "max_calls": limits.max_calls,
        },
    }


def settings_from_dict(doc: dict[str, Any]) -> MediaSettings:
    return MediaSettings(
        ice_servers=list(doc.get("ice_servers") or []),
        host_addresses=doc.get("host_addresses"),
        limits=MediaLimits(**doc.get("limits", {})),
    )


class WorkerServer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tasks: set[asyncio.Task[None]] = set()
        self.host: LocalMediaHost | None = None

    def send(self, message: dict[str, Any]) -> None:
        if not self._writer.is_closing():
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def _renegotiate(self, call_id: str, participant: str, needs: dict[str, int]) -> None:
        self.send(
            {"event": "renegotiate", "call_id": call_id, "participant": participant, "needs": needs}
        )

    async def run(self) -> None:
        first = await self._reader.readline()
        if not first:
            return
        settings = settings_from_dict(json.loads(first)["settings"])
        self.host = LocalMediaHost(settings, self._renegotiate)
        await self.host.start()
        self.send({"event": "ready", "pid": os.getpid()})
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    log.info("parent gone: closing this worker's calls")
                    break
                message = json.loads(line)
                if message.get("method") == "shutdown":
                    await self._drain()
                    await self.host.close()
                    self.send({"id": message.get("id"), "ok": True, "result": {}})
                    await self._writer.drain()
                    return
                task = asyncio.create_task(self._handle(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            await self._drain()
            await self.host.close()

    async def _drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        try:
            result = await self._dispatch(str(message.get("method")), message.get("params") or {})
            reply: dict[str, Any] = {"id": request_id, "ok": True, "result": result}
        except TongbanError as err:
            reply = {"id": request_id, "ok": False, "error": err.to_dict()}
        except Exception:
            log.exception("media worker request %s failed", message.get("method"))
            reply = {
                "id": request_id,
                "ok": False,
                "error": {"code": "internal_error", "message": "媒体进程出错"},
            }
        self.send(reply)

    async def _dispatch(self, method: str, p: dict[str, Any]) -> Any:
        host = self.host
        assert host is not None
        if method == "open_call":
            dump = DumpSpec.from_dict(p["dump"]) if p.get("dump") else None
            return await host.open_call(str(p["call_id"]), dump)
        if method == "offer":
            return await host.offer(
                str(p["call_id"]),
                str(p["participant"]),
                str(p["sdp"]),
                dict(p["tracks"]),
                replace=bool(p.get("replace")),
            )
        if method == "candidate":
            await host.candidate(str(p["call_id"]), str(p["participant"]), dict(p["candidate"]))
            return {}
        if method == "needs":
            return await host.needs(str(p["call_id"]), str(p["participant"]))
        if method == "close_call":
            await host.close_call(str(p["call_id"]))
            return {}
        if method == "stats":
            return host.stats()
        raise TongbanError(f"unknown media worker method {method}", code="invalid_input")


async def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
    loop = asyncio.get_running_loop()
    server = WorkerServer(reader, writer)
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await server.run()
    except asyncio.CancelledError:
        if server.host is not None:
            await server.host.close()
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m media.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)s media-worker-{args.index} %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of tongban serve
        asyncio.run(serve(args.fd))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.fd))


if __name__ == "__main__":
    main()
