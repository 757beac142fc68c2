"""N concurrent 1:1 calls through the server: RTP forwarding vs decode/re-encode.

    .venv/bin/python -m bench.media.run --calls 2 --seconds 20

The server runs in its own process, each call's two aiortc clients in another (VP8 numbered
frames + Opus); everything on 127.0.0.1. The same run measures both server designs one after
the other. Figures: server CPU (% of one core) per call, CPU µs per forwarded packet, receive
fps, missing frames, frame latency p50/p95 (capture to decode), server memory per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

LOOPBACK = ["127.0.0.1"]


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def read_json(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await stream.readline()
    if not line:
        raise ConnectionError("peer closed")
    result: dict[str, Any] = json.loads(line)
    return result


# ------------------------------------------------------------------------------ server role


async def server_main(mode: str) -> None:
    from bench.media.naive import NaiveCall
    from media.call import CallMedia

    calls: dict[str, Any] = {}

    def get_call(call_id: str) -> Any:
        if call_id not in calls:
            if mode == "forward":
                calls[call_id] = CallMedia(
                    call_id, ice_servers=[], host_addresses=LOOPBACK, sink=None
                )
            else:
                calls[call_id] = NaiveCall(LOOPBACK)
        return calls[call_id]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await read_json(reader)
                call = get_call(req["call"])
                if req["op"] == "needs":
                    needs = (
                        call.receive_needs(req["participant"])
                        if mode == "forward"
                        else call.needs(req["participant"])
                    )
                    reply: dict[str, Any] = {"needs": needs}
                else:
                    answer = await call.offer(req["participant"], req["sdp"], req["tracks"])
                    reply = {"answer": answer}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # client gone, or the server is shutting down
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emit({"port": port, "rss": rss_kib()})
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        cmd = await read_json(stdin)
        if cmd["cmd"] == "mark":
            t = os.times()
            packets = 0
            if mode == "forward":
                packets = sum(c.counters.packets_out for c in calls.values())
            emit(
                {
                    "cpu": t.user + t.system,
                    "wall": time.monotonic(),
                    "rss": rss_kib(),
                    "packets_out": packets,
                }
            )
        elif cmd["cmd"] == "quit":
            for c in calls.values():
                await c.close()
            server.close()
            emit({"bye": True})
            return


# ------------------------------------------------------------------------------ client role


async def client_main(port: int, call_id: str, width: int, height: int) -> None:
    from media.testing import ClientPeer

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lock = asyncio.Lock()

    async def request(obj: dict[str, Any]) -> dict[str, Any]:
        async with lock:
            writer.write((json.dumps(obj) + "\n").encode())
            await writer.drain()
            return await read_json(reader)

    peers: dict[str, ClientPeer] = {}

    def sent_at(receiver: str) -> Any:
        def lookup(mid: str, n: int) -> float | None:
            other = next(p for name, p in peers.items() if name != receiver)
            track = other.tracks["camera"]
            return track.sent_at.get(n)  # type: ignore[attr-defined, no-any-return]

        return lookup

    for name in ("a", "b"):
        peers[name] = ClientPeer(
            f"{call_id}-{name}", width=width, height=height, sent_at_lookup=sent_at(name)
        )

    async def signal(participant: str, sdp: str, tracks: dict[str, str]) -> str:
        reply = await request(
            {
                "op": "offer",
                "call": call_id,
                "participant": participant,
                "sdp": sdp,
                "tracks": tracks,
            }
        )
        return str(reply["answer"])

    async def negotiate(peer: ClientPeer) -> None:
        needs = await request({"op": "needs", "call": call_id, "participant": peer.name})
        peer.ensure_receivers(needs["needs"])
        await peer.negotiate(signal, LOOPBACK)

    await negotiate(peers["a"])
    await negotiate(peers["b"])
    await negotiate(peers["a"])  # the renegotiation b's arrival asks for
    for peer in peers.values():
        await peer.wait_for(
            lambda p=peer: any(r.kind == "video" and r.numbers for r in p.received.values()),
            within=30,
            what="first frame",
        )
    emit({"ready": True})

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    marks: dict[str, tuple[int, int, int]] = {}
    await read_json(stdin)  # start
    t0 = time.monotonic()
    for name, peer in peers.items():
        for r in peer.received.values():
            marks[f"{name}{r.mid}"] = (len(r.numbers), len(r.latencies), r.audio_frames)
    await read_json(stdin)  # stop
    elapsed = time.monotonic() - t0
    fps, missing, latencies, audio = [], 0, [], 0
    for name, peer in peers.items():
        for r in peer.received.values():
            n0, l0, a0 = marks.get(f"{name}{r.mid}", (0, 0, 0))
            if r.kind == "video":
                window = r.numbers[n0:]
                fps.append(len(window) / elapsed)
                if len(window) > 1:
                    missing += ((window[-1] - window[0]) & 0xFFFF) + 1 - len(set(window))
                latencies += r.latencies[l0:]
            else:
                audio += r.audio_frames - a0
    emit({"fps": fps, "missing": missing, "latencies": latencies, "audio_frames": audio})
    for peer in peers.values():
        await peer.close()
    writer.close()


# ------------------------------------------------------------------------------ orchestrator


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.media.run",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def send(proc: asyncio.subprocess.Process, obj: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(obj) + "\n").encode())
    await proc.stdin.drain()


async def recv(proc: asyncio.subprocess.Process, within: float = 60) -> dict[str, Any]:
    assert proc.stdout is not None
    return await asyncio.wait_for(read_json(proc.stdout), within)


async def measure(
    mode: str, calls: int, seconds: float, warmup: float, size: str
) -> dict[str, Any]:
    server = await spawn("--role", "server", "--mode", mode)
    hello = await recv(server)
    clients = [
        await spawn(
            "--role", "client", "--port", str(hello["port"]), "--call-id", f"c{i}", "--size", size
        )
        for i in range(calls)
    ]
    try:
        for c in clients:
            await recv(c, within=90)
        await asyncio.sleep(warmup)  # let bitrate and CPU settle (a measurement, not a wait)
        start = (await send(server, {"cmd": "mark"}), await recv(server))[1]
        for c in clients:
            await send(c, {"cmd": "start"})
        await asyncio.sleep(seconds)
        end = (await send(server, {"cmd": "mark"}), await recv(server))[1]
        for c in clients:
            await send(c, {"cmd": "stop"})
        results = [await recv(c) for c in clients]
    finally:
        await send(server, {"cmd": "quit"})
        for proc in [*clients, server]:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    wall = end["wall"] - start["wall"]
    cpu = (end["cpu"] - start["cpu"]) / wall * 100
    packets = end["packets_out"] - start["packets_out"]
    lat = sorted(x for r in results for x in r["latencies"])
    fps = [f for r in results for f in r["fps"]]
    return {
        "mode": mode,
        "cpu_per_call": cpu / calls,
        "us_per_packet": (end["cpu"] - start["cpu"]) / packets * 1e6 if packets else None,
        "packets_per_s_per_call": packets / wall / calls if packets else None,
        "fps": statistics.mean(fps) if fps else 0.0,
        "missing": sum(r["missing"] for r in results),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "p95_ms": lat[int(len(lat) * 0.95)] * 1000 if lat else None,
        "mem_per_call_mib": (end["rss"] - hello["rss"]) / 1024 / calls,
    }


def table(rows: list[dict[str, Any]]) -> str:
    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = ["mode", "CPU %/call", "µs/packet", "pkt/s/call", "rx fps", "missing"]
    head += ["p50 ms", "p95 ms", "MiB/call"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {f(r['cpu_per_call'], '.1f')} | {f(r['us_per_packet'], '.0f')} | "
            f"{f(r['packets_per_s_per_call'], '.0f')} | {f(r['fps'], '.1f')} | {r['missing']} | "
            f"{f(r['p50_ms'], '.0f')} | {f(r['p95_ms'], '.0f')} | "
            f"{f(r['mem_per_call_mib'], '.1f')} |"
        )
    return "\n".join(lines)


async def orchestrate(args: argparse.Namespace) -> None:
    rows = []
    for mode in ("forward", "naive"):
        rows.append(await measure(mode, args.calls, args.seconds, args.warmup, args.size))
    print(
        f"{args.calls} calls, {args.seconds:.0f} s measured after {args.warmup:.0f} s, "
        f"video {args.size} 30 fps VP8 + Opus, loopback"
    )
    print(table(rows))
    fwd, naive = rows
    if fwd["cpu_per_call"]:
        print(
            f"decode/re-encode costs {naive['cpu_per_call'] / fwd['cpu_per_call']:.1f}x "
            "the server CPU of RTP forwarding"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--size", default="640x480")
    parser.add_argument(
        "--role", choices=["orchestrator", "server", "client"], default="orchestrator"
    )
    parser.add_argument("--mode", choices=["forward", "naive"], default="forward")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--call-id", default="c0")
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(server_main(args.mode))
    elif args.role == "client":
        w, h = (int(x) for x in args.size.split("x"))
        asyncio.run(client_main(args.port, args.call_id, w, h))
    else:
        asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
