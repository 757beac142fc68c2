"""N concurrent recorded 1:1 calls through the server: RTP forwarding, decode/re-encode, Janus.

    .venv/bin/python -m bench.media.run --calls 2 --seconds 20 --warmup 5 --repeat 3

The server runs in its own process, each call's two aiortc clients in another process; all
traffic on 127.0.0.1. Clients send VP8 640x480 at 30 fps at 1 Mbit/s (textured frames, see
``media.testing``; ``--clients replay``, the default, encodes a 10 s loop once with aiortc's
VP8 settings and replays it, ``--clients encode`` encodes live) plus Opus, and number every
video frame. Modes (``--modes``, run alternately, same clients):

- ``forward``: ``media.call.CallMedia`` with a ``recorder.dump.DumpWriter`` as its sink, as the
  real server records;
- ``naive``: an aiortc ``MediaRelay`` decode/re-encode relay (re-encoding at 1 Mbit/s) that
  records with aiortc's ``MediaRecorder`` (a WebM file per participant, VP8 + Opus encoded
  again), the server issue 4 describes as the naive one;
- ``janus``: Debian's Janus 1.1.2, VideoRoom with recording (``bench/media/janus.py``); needs
  the namespace of ``bench/media/netns.sh`` (run the whole benchmark inside it);
- ``forward-uvloop``: ``forward`` on uvloop's event loop, as ``tongban serve`` runs it with
  ``TONGBAN_MEDIA_WORKERS=0`` (media in the server's process);
- ``workers``: the calls' media in ``--workers`` media worker processes
  (``media.workers.WorkerPool``, as ``tongban serve`` runs it by default), each recording its
  calls; CPU and memory are those of the server and its workers together.

``--find-capacity`` raises the number of calls until the server no longer keeps up (see
``capacity``) for ``forward-uvloop`` and ``workers``: recorded calls per node with worker
processes against one process.

Figures: server CPU (utime+stime of the server process from /proc/<pid>/stat, all threads)
per call, per packet and normalised to 325 packets/s, datagrams and kbit/s the clients
received, receive fps, missing frames, capture-to-decode latency p50/p95, server memory
(VmRSS growth) per call; ratios naive/forward and forward/Janus. Bounded: ``--deadline``
seconds for the whole run, after which every process is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

LOOPBACK = ["127.0.0.1"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_BITRATE = 1_000_000
MODES = ["forward", "naive", "janus", "forward-uvloop", "workers"]
REF_PACKETS = 325  # packets/s of one such call (both directions), as in NOTES-webrtc.md
REPLAY_FRAMES = 300  # a 10 s loop, keyframe every 5 s
NOISE = 8  # luma texture amplitude: makes VP8 at 640x480 use its 1 Mbit/s


def rss_kib(pid: int | None = None) -> int:
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_total(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of several processes together (a server and its media workers)."""
    times = [cpu_times(pid) for pid in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads) in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # fields 14, 15 of proc(5)


def remove_dir(path: str) -> int:
    """Delete a recording folder; returns how many bytes it held."""
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    shutil.rmtree(path, ignore_errors=True)
    return size


def write_json(path: str, doc: Any) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def read_json(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await stream.readline()
    if not line:
        raise ConnectionError("peer closed")
    result: dict[str, Any] = json.loads(line)
    return result


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    return stdin


# ------------------------------------------------------------------------------ server role


async def server_main(mode: str, record_dir: str, profile: str | None) -> None:
    from bench.media.naive import NaiveCall
    from media.call import CallMedia
    from recorder.dump import DumpWriter

    calls: dict[str, Any] = {}
    writers: list[DumpWriter] = []
    if mode == "naive":  # re-encode at the clients' 1 Mbit/s, not aiortc's REMB-driven rate
        from media.testing import pin_video_bitrate

        pin_video_bitrate(TARGET_BITRATE)

    def get_call(call_id: str) -> Any:
        if call_id not in calls:
            if mode == "forward":
                sink = DumpWriter(
                    os.path.join(record_dir, f"{call_id}.tbdump"), call_id, datetime.now(UTC)
                )
                writers.append(sink)
                calls[call_id] = CallMedia(
                    call_id, ice_servers=[], host_addresses=LOOPBACK, sink=sink
                )
            else:
                calls[call_id] = NaiveCall(LOOPBACK, os.path.join(record_dir, call_id))
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
    stdin = await stdin_reader()
    profiler: Any = None
    while True:
        cmd = await read_json(stdin)
        if cmd["cmd"] == "mark":
            packets = 0
            if mode == "forward":
                packets = sum(c.counters.packets_out for c in calls.values())
            if profile and profiler is None:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            elif profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
            emit(
                {
                    "rss": rss_kib(),
                    "packets_out": packets,
                    "recorded": sum(w.packets_written for w in writers),
                    "gc": [g["collections"] for g in gc.get_stats()],
                    "stats": [c.stats() for c in calls.values()] if mode == "forward" else [],
                }
            )
        elif cmd["cmd"] == "quit":
            for c in calls.values():
                await c.close()
            server.close()
            emit({"bye": True})
            return


async def workers_server_main(count: int, record_dir: str) -> None:
    """The ``workers`` mode: the same protocol, the calls' media in a ``WorkerPool``."""
    from media.engine import MediaSettings
    from media.host import DumpSpec
    from media.workers import WorkerPool

    pool = WorkerPool(count, MediaSettings(host_addresses=LOOPBACK))
    await pool.start()
    opening: dict[str, asyncio.Future[int]] = {}

    async def ensure(call_id: str) -> None:
        if call_id not in opening:
            dump = DumpSpec(
                os.path.join(record_dir, f"{call_id}.tbdump"),
                call_id,
                datetime.now(UTC).isoformat(),
            )
            opening[call_id] = asyncio.ensure_future(pool.open_call(call_id, dump))
        await opening[call_id]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await read_json(reader)
                await ensure(req["call"])
                if req["op"] == "needs":
                    reply: dict[str, Any] = {
                        "needs": await pool.needs(req["call"], req["participant"])
                    }
                else:
                    answer = await pool.offer(
                        req["call"], req["participant"], req["sdp"], req["tracks"]
                    )
                    reply = {"answer": answer["sdp"]}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    pids = [os.getpid(), *(p for p in pool.pids() if p is not None)]
    emit({"port": server.sockets[0].getsockname()[1], "rss": rss_total(pids), "pids": pids})
    stdin = await stdin_reader()
    while True:
        cmd = await read_json(stdin)
        if cmd["cmd"] == "mark":
            stats = await pool.stats()
            calls = [c for st in stats for c in st["per_call"].values()]
            emit(
                {
                    "rss": rss_total(pids),
                    "packets_out": sum(c["packets_out"] for c in calls),
                    "recorded": sum(d["written"] for st in stats for d in st["dumps"].values()),
                    "stats": [st["calls"] for st in stats],
                }
            )
        elif cmd["cmd"] == "quit":
            await pool.close()
            server.close()
            emit({"bye": True})
            return


def rss_total(pids: list[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


class CoreQuota:
    """Each server process in a cgroup (v1 ``cpu``) of its own, capped at ``share`` of a core.

    Emulates a node whose cores are ``share`` of this machine's: one process can use at most
    one such core, N worker processes N of them, and the load generators (the clients) keep
    the rest of the machine. Root only.
    """

    ROOT = "/sys/fs/cgroup/cpu"
    PERIOD_US = 10_000  # short, so a throttled process waits milliseconds, not 100 ms

    def __init__(self, share: float) -> None:
        self.share = share
        self.groups: list[str] = []

    def confine(self, pid: int) -> None:
        group = os.path.join(self.ROOT, f"tbbench-{pid}")
        os.makedirs(group, exist_ok=True)
        self.groups.append(group)  # removed by release() even if a write below fails
        period = max(self.PERIOD_US, int(1000 / self.share) + 1)  # a quota is at least 1 ms
        for name, value in (
            ("cpu.cfs_period_us", period),
            ("cpu.cfs_quota_us", int(period * self.share)),
            ("cgroup.procs", pid),
        ):
            with open(os.path.join(group, name), "w") as f:
                f.write(str(value))

    def throttled_ms(self) -> float:
        total = 0
        for group in self.groups:
            with open(os.path.join(group, "cpu.stat")) as f:
                for line in f:
                    if line.startswith("throttled_time"):
                        total += int(line.split()[1])
        return total / 1e6

    def release(self) -> None:
        for group in self.groups:
            try:
                os.rmdir(group)
            except OSError:
                pass
        self.groups.clear()


# ------------------------------------------------------------------------------ client role


def frame_gaps(numbers: list[int], modulus: int = 1 << 16) -> tuple[int, int]:
    """(frames skipped, implausible jumps) in a receiver's decoded frame numbers.

    Numbers count modulo ``modulus`` (the replay loop's length, or 2**16). A jump forward
    of up to 300 frames (half the loop at most) counts its skipped frames; anything else (backwards,
    or a misread number in a badly degraded picture) is counted as garbled, not as 65,000
    missing frames.
    """
    missing = garbled = 0
    for a, b in itertools.pairwise(numbers):
        d = (b - a) % modulus
        if 1 <= d <= min(300, modulus // 2):
            missing += d - 1
        elif d != 0:
            garbled += 1
    return missing, garbled


def save_frames(path: str, frames: list[bytes]) -> None:
    with open(path, "wb") as f:
        for frame in frames:
            f.write(len(frame).to_bytes(4, "big") + frame)


def load_frames(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        data = f.read()
    frames, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        frames.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return frames


class LightReceivers:
    """``--light``: receivers that do not decode video (capacity runs on a 2-core machine).

    Decoding two 640x480 VP8 streams per call costs the load generators far more than the
    server spends forwarding them, so at a dozen calls the clients, not the server, would
    saturate. In this mode aiortc's decoder thread (``aiortc.rtcrtpreceiver.decoder_worker``,
    replaced in the client processes only) records each complete frame's arrival time and RTP
    timestamp instead of decoding it. Figures per video track: frames per second, frames
    missing between the first and the last (RTP timestamp steps of 3000 at 90 kHz), and the
    queueing delay of each frame (arrival minus RTP time, above the smallest such difference
    seen on that track): what a saturated server adds, while the network here adds nothing.
    """

    frames: ClassVar[dict[int, list[tuple[float, int]]]] = {}  # id(track queue) -> frames

    @classmethod
    def install(cls) -> None:
        import aiortc.rtcrtpreceiver as receiver_module

        def record_only(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
            frames = cls.frames.setdefault(id(output_q), [])
            while True:
                task = input_q.get()
                if task is None:
                    return
                frames.append((time.time(), task[1].timestamp))

        receiver_module.decoder_worker = record_only  # type: ignore[assignment]

    @classmethod
    def tracks(cls, peer: Any) -> list[list[tuple[float, int]]]:
        out = []
        for transceiver in peer.pc.getTransceivers():
            track = transceiver.receiver.track
            if track is not None and track.kind == "video":
                out.append(cls.frames.setdefault(id(track._queue), []))
        return out

    @staticmethod
    def figures(window: list[tuple[float, int]], base: float) -> tuple[int, int, list[float]]:
        """(frames, missing, queueing delays) of one track's frames in the window."""
        if not window:
            return 0, 0, []
        stamps = sorted({ts for _, ts in window})
        span = ((stamps[-1] - stamps[0]) & 0xFFFFFFFF) // 3000 + 1
        delays = [arrival - ts / 90_000 - base for arrival, ts in window]
        return len(window), max(0, span - len(stamps)), delays


async def light_measure_client(receivers: dict[str, Any]) -> None:
    stdin = await stdin_reader()
    await read_json(stdin)  # start
    t0 = time.monotonic()
    starts = {id(t): len(t) for p in receivers.values() for t in LightReceivers.tracks(p)}
    await read_json(stdin)  # stop
    elapsed = time.monotonic() - t0
    fps, missing, latencies = [], 0, []
    for peer in receivers.values():
        for track in LightReceivers.tracks(peer):
            # the RTP clock's offset is unknown: the smallest arrival-minus-RTP-time of the
            # track (before or in the window) stands for "no queueing"
            base = min((arrival - ts / 90_000 for arrival, ts in track), default=0.0)
            n, gaps, delays = LightReceivers.figures(track[starts.get(id(track), 0) :], base)
            fps.append(n / elapsed)
            missing += gaps
            latencies += delays
    emit(
        {
            "fps": fps,
            "missing": missing,
            "garbled": 0,
            "latencies": latencies,
            "audio_frames": 0,
            "rx_packets": 0,
            "rx_bytes": 0,
            "elapsed": elapsed,
        }
    )
    await read_json(stdin)  # quit


async def client_main(args: argparse.Namespace) -> None:
    from media.testing import ClientPeer, pin_video_bitrate

    if args.light:
        LightReceivers.install()

    width, height = (int(x) for x in args.size.split("x"))
    pin_video_bitrate(TARGET_BITRATE)
    replay = load_frames(args.replay_file) if args.replay_file else None
    modulus = len(replay) if replay else 1 << 16
    peers: dict[str, ClientPeer] = {}  # senders (and, through our server, receivers)

    def sent_at(receiver: str) -> Any:
        def lookup(mid: str, n: int) -> float | None:
            other = next(p for name, p in peers.items() if name != receiver)
            track = other.tracks["camera"]
            return track.sent_at.get(n)  # type: ignore[attr-defined, no-any-return]

        return lookup

    for name in ("a", "b"):
        peers[name] = ClientPeer(
            f"{args.call_id}-{name}",
            width=width,
            height=height,
            noise=NOISE,
            replay=replay,
            sent_at_lookup=sent_at(name),
        )
    if args.janus_url:
        receivers, closing = await janus_client(args, peers, sent_at)
    else:
        receivers, closing = await tongban_client(args, peers)
    if args.light:
        for _ in range(300):
            if all(any(t) for p in receivers.values() for t in LightReceivers.tracks(p)):
                break
            await asyncio.sleep(0.1)
        emit({"ready": True})
        await light_measure_client(receivers)
    else:
        for peer in receivers.values():
            await peer.wait_for(
                lambda p=peer: any(r.kind == "video" and r.numbers for r in p.received.values()),
                within=30,
                what="first frame",
            )
        emit({"ready": True})
        await measure_client(peers, receivers, modulus)
    for peer in {*peers.values(), *receivers.values()}:
        await peer.close()
    await closing()


async def tongban_client(args: argparse.Namespace, peers: dict[str, Any]) -> tuple[Any, Any]:
    """Each participant offers to our server (forward or naive) on one connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    lock = asyncio.Lock()
    call_id = args.call_id

    async def request(obj: dict[str, Any]) -> dict[str, Any]:
        async with lock:
            writer.write((json.dumps(obj) + "\n").encode())
            await writer.drain()
            return await read_json(reader)

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

    async def negotiate(peer: Any) -> None:
        needs = await request({"op": "needs", "call": call_id, "participant": peer.name})
        peer.ensure_receivers(needs["needs"])
        await peer.negotiate(signal, LOOPBACK)

    await negotiate(peers["a"])
    await negotiate(peers["b"])
    await negotiate(peers["a"])  # the renegotiation b's arrival asks for

    async def closing() -> None:
        writer.close()

    return peers, closing


async def janus_client(
    args: argparse.Namespace, peers: dict[str, Any], sent_at: Any
) -> tuple[Any, Any]:
    """VideoRoom: each participant publishes on one connection, subscribes on another."""
    from bench.media.janus import JanusSession, create_room
    from media.testing import ClientPeer

    hosts = [args.client_address]
    session = JanusSession(args.janus_url)
    await session.create()
    room = args.janus_room
    await create_room(session, room, args.janus_rec_dir)
    feeds: dict[str, int] = {}
    handles: dict[str, int] = {}
    for name, peer in peers.items():
        handle = handles[name] = await session.attach()
        joined = await session.message(
            handle, {"request": "join", "ptype": "publisher", "room": room, "display": name}
        )
        feeds[name] = int(joined["plugindata"]["data"]["id"])

        async def signal(
            participant: str, sdp: str, tracks: dict[str, str], handle: int = handle
        ) -> str:
            event = await session.message(
                handle,
                {"request": "configure", "audio": True, "video": True},
                jsep={"type": "offer", "sdp": sdp},
            )
            return str(event["jsep"]["sdp"])

        await peer.negotiate(signal, hosts)
    receivers: dict[str, ClientPeer] = {}
    for name in peers:
        other = next(n for n in peers if n != name)
        await session.webrtcup(handles[other])
        sub = receivers[name] = ClientPeer(
            f"{args.call_id}-{name}-sub", video=False, audio=False, sent_at_lookup=sent_at(name)
        )
        handle = await session.attach()
        attached = await session.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": room,
                "streams": [{"feed": feeds[other]}],
            },
        )
        answer = await sub.answer(attached["jsep"]["sdp"], hosts)
        await session.message(handle, {"request": "start"}, jsep={"type": "answer", "sdp": answer})
    return receivers, session.close


async def measure_client(peers: dict[str, Any], receivers: dict[str, Any], modulus: int) -> None:
    from media.testing import inbound_rtp

    async def rtp_totals() -> tuple[int, int]:
        totals = [await inbound_rtp(p.pc) for p in receivers.values()]
        return sum(t[0] for t in totals), sum(t[1] for t in totals)

    stdin = await stdin_reader()
    marks: dict[str, tuple[int, int, int]] = {}
    await read_json(stdin)  # start
    t0 = time.monotonic()
    rtp0 = await rtp_totals()
    for name, peer in receivers.items():
        for r in peer.received.values():
            marks[f"{name}{r.mid}"] = (len(r.numbers), len(r.latencies), r.audio_frames)
    await read_json(stdin)  # stop
    elapsed = time.monotonic() - t0
    rtp1 = await rtp_totals()
    fps, missing, garbled, latencies, audio = [], 0, 0, [], 0
    for name, peer in receivers.items():
        for r in peer.received.values():
            n0, l0, a0 = marks.get(f"{name}{r.mid}", (0, 0, 0))
            if r.kind == "video":
                window = r.numbers[n0:]
                fps.append(len(window) / elapsed)
                gaps, bad = frame_gaps(window, modulus)
                missing += gaps
                garbled += bad
                latencies += r.latencies[l0:]
            else:
                audio += r.audio_frames - a0
    emit(
        {
            "fps": fps,
            "missing": missing,
            "garbled": garbled,
            "latencies": latencies,
            "audio_frames": audio,
            "rx_packets": rtp1[0] - rtp0[0],
            "rx_bytes": rtp1[1] - rtp0[1],
            "elapsed": elapsed,
        }
    )
    await read_json(stdin)  # quit


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


async def ask(proc: asyncio.subprocess.Process, obj: dict[str, Any]) -> dict[str, Any]:
    await send(proc, obj)
    return await recv(proc)


async def stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            try:
                await send(proc, {"cmd": "quit"})
            except (ConnectionError, OSError):
                pass
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    record_dir = tempfile.mkdtemp(prefix="bench-media-")
    procs: list[asyncio.subprocess.Process] = []
    janus: Any = None
    quota = CoreQuota(args.core_share) if args.core_share else None
    calls = args.calls
    throttled = 0.0
    try:
        if mode == "janus":
            from bench.media.janus import JanusServer

            janus = JanusServer(args.janus_interface)
            await janus.start()
            assert janus.proc is not None
            pid = janus.proc.pid
            hello = {"rss": rss_kib(pid)}
            client_args = [
                "--janus-url",
                janus.url,
                "--janus-rec-dir",
                janus.rec_dir,
                "--client-address",
                args.client_address,
            ]
        else:
            extra = ["--record-dir", record_dir]
            if args.profile and mode == "forward":
                extra += ["--profile", args.profile]
            if mode == "workers":
                extra += ["--workers", str(args.workers)]
            server = await spawn("--role", "server", "--mode", mode, *extra)
            procs.append(server)
            pid = server.pid
            hello = await recv(server)
            client_args = ["--port", str(hello["port"])]
        pids = hello.get("pids") or [pid]
        if quota is not None:
            for p in pids:
                quota.confine(p)

        async def mark() -> dict[str, Any]:
            if janus is not None:
                return {"rss": rss_total(pids), "packets_out": 0, "recorded": 0, "stats": []}
            return await ask(procs[0], {"cmd": "mark"})

        clients = [
            await spawn(
                "--role",
                "client",
                *client_args,
                "--janus-room",
                str(1000 + i),
                "--call-id",
                f"c{i}",
                "--size",
                args.size,
                *(["--replay-file", args.replay_file] if args.replay_file else []),
                *(["--light"] if args.light else []),
            )
            for i in range(args.calls)
        ]
        procs += clients
        for c in clients:
            await recv(c, within=90)
        await asyncio.sleep(args.warmup)  # let bitrate and CPU settle (a measurement)
        start = await mark()
        throttled = quota.throttled_ms() if quota else 0.0
        cpu0, t0 = cpu_total(pids), time.monotonic()
        for c in clients:
            await send(c, {"cmd": "start"})
        await asyncio.sleep(args.seconds)
        cpu1, t1 = cpu_total(pids), time.monotonic()
        throttled = (quota.throttled_ms() - throttled) if quota else 0.0
        end = await mark()
        for c in clients:
            await send(c, {"cmd": "stop"})
        results = [await recv(c) for c in clients]
    finally:
        await stop_all(procs)
        if quota is not None:
            quota.release()
        recorded = remove_dir(record_dir)
        if janus is not None:
            recorded = janus.recorded_bytes()
            await janus.stop()
    wall = t1 - t0
    cpu = sum(cpu1) - sum(cpu0)
    system_share = (cpu1[1] - cpu0[1]) / cpu if cpu else 0.0
    forwarded = end["packets_out"] - start["packets_out"]
    rx_packets = sum(r["rx_packets"] for r in results)
    rx_bytes = sum(r["rx_bytes"] for r in results)
    lat = sorted(x for r in results for x in r["latencies"])
    fps = [f for r in results for f in r["fps"]]
    per_packet = forwarded or rx_packets
    return {
        "mode": mode,
        "calls": calls,
        "server_cpu_pct": cpu / wall * 100,
        "throttled_ms_per_s": throttled / wall,
        "cpu_per_call": cpu / wall * 100 / args.calls,
        "us_per_packet": cpu / per_packet * 1e6 if per_packet else None,
        "rx_packets_per_s_per_call": rx_packets / wall / args.calls,
        "rx_kbit_per_call": rx_bytes * 8 / wall / 1000 / args.calls,
        "fps": statistics.mean(fps) if fps else 0.0,
        "min_fps": min(fps) if fps else 0.0,
        "missing": sum(r["missing"] for r in results),
        "garbled": sum(r["garbled"] for r in results),
        "cpu_per_call_at_ref": cpu / per_packet * 1e6 * REF_PACKETS / 1e4 if per_packet else None,
        "cpu_per_call_at_30fps": (
            cpu / wall * 100 / args.calls * 30 / statistics.mean(fps)
            if fps and statistics.mean(fps)
            else None
        ),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "p95_ms": lat[int(len(lat) * 0.95)] * 1000 if lat else None,
        "mem_per_call_mib": (end["rss"] - hello["rss"]) / 1024 / args.calls,
        "rss_mib": end["rss"] / 1024,
        "system_share": system_share,
        "recorded_packets": end["recorded"] - start["recorded"],
        "recorded_mib": recorded / 2**20,
        "forward_stats": end["stats"],
        "gc": [b - a for a, b in zip(start.get("gc", []), end.get("gc", []), strict=False)],
    }


FIELDS = [
    ("CPU %/call", "cpu_per_call", ".2f"),
    ("µs/packet", "us_per_packet", ".0f"),
    ("%/call at 325 pkt/s", "cpu_per_call_at_ref", ".2f"),
    ("%/call scaled to 30 fps", "cpu_per_call_at_30fps", ".2f"),
    ("rx pkt/s/call", "rx_packets_per_s_per_call", ".0f"),
    ("rx kbit/s/call", "rx_kbit_per_call", ".0f"),
    ("rx fps", "fps", ".1f"),
    ("missing", "missing", "d"),
    ("p50 ms", "p50_ms", ".0f"),
    ("p95 ms", "p95_ms", ".0f"),
    ("MiB/call", "mem_per_call_mib", ".1f"),
]


def fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the repeats, and its min-max spread."""
    out: dict[str, Any] = {"mode": rows[0]["mode"], "runs": len(rows)}
    for _, key, _ in FIELDS:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = statistics.median(values) if values else None
        out[key + "_spread"] = (min(values), max(values)) if values else None
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = ["mode", *[h for h, _, _ in FIELDS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["mode"])]
        for _, key, spec in FIELDS:
            value = fmt(r[key], spec if key != "missing" else ".0f")
            spread = r.get(key + "_spread")
            if spread and r.get("runs", 1) > 1 and spread[0] != spread[1]:
                s = spec if key != "missing" else ".0f"
                value += f" ({fmt(spread[0], s)}–{fmt(spread[1], s)})"
            cells.append(value)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kept_up(row: dict[str, Any]) -> bool:
    return bool(row["min_fps"] >= 28.5 and row["missing"] <= 5)


def kept_up_at_scale(row: dict[str, Any]) -> bool:
    """Every receiver at 30 fps, at most 2 frames lost per call, p95 latency ≤ 150 ms."""
    return bool(
        row["min_fps"] >= 28.5
        and row["missing"] <= 2 * row["calls"]
        and (row["p95_ms"] or 0) <= 150
    )


async def find_capacity(args: argparse.Namespace, modes: list[str]) -> None:
    """Recorded calls per node: the most calls each mode carries while keeping up."""
    counts = [int(x) for x in args.find_capacity.split(",") if x]
    capacity: dict[str, int] = {}
    for mode in modes:
        capacity[mode] = 0
        for n in counts:
            row = await measure(mode, argparse.Namespace(**{**vars(args), "calls": n}))
            ok = kept_up_at_scale(row)
            print(
                f"{mode} {n} calls: server CPU {row['server_cpu_pct']:.0f} % "
                f"({row['cpu_per_call']:.2f} %/call, throttled {row['throttled_ms_per_s']:.0f} "
                f"ms/s), min fps {row['min_fps']:.1f}, missing {row['missing']}, "
                f"p50 {fmt(row['p50_ms'], '.0f')} ms, p95 {fmt(row['p95_ms'], '.0f')} ms, "
                f"{row['mem_per_call_mib']:.1f} MiB/call -> {'kept up' if ok else 'did not'}; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if not ok:
                break
            capacity[mode] = n
    share = f", each server process capped at {args.core_share:g} core" if args.core_share else ""
    print(f"recorded calls per node (most that kept up{share}):")
    for mode in modes:
        print(f"  {mode}: {capacity[mode]}")
    one, many = capacity.get("forward-uvloop"), capacity.get("workers")
    if one and many:
        print(f"workers ({args.workers}) / one process: {many / one:.2f}x")


async def orchestrate(args: argparse.Namespace) -> None:
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        raise SystemExit(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {MODES}")
    if args.find_capacity:
        await find_capacity(args, modes)
        return
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for i in range(args.repeat):
        for mode in modes:
            row = await measure(mode, args)
            runs[mode].append(row)
            if args.verbose:
                print(f"run {i + 1} {mode}:", table([row]).splitlines()[-1], flush=True)
                print(f"  kernel share of server CPU: {row['system_share']:.0%}", flush=True)
                if mode == "forward":
                    print("  server counters:", row["forward_stats"], flush=True)
                    print("  gc collections per generation:", row["gc"], flush=True)
                    print(
                        f"  recorded {row['recorded_packets']} packets, "
                        f"{row['recorded_mib']:.1f} MiB",
                        flush=True,
                    )
            if not kept_up(row):
                print(
                    f"run {i + 1} {mode}: did not keep up (min fps {row['min_fps']:.1f}, "
                    f"{row['missing']} frames missing)",
                    flush=True,
                )
    print(
        f"{args.calls} recorded 1:1 calls, {args.seconds:.0f} s measured after "
        f"{args.warmup:.0f} s warm-up, {args.repeat} run(s) per mode (median, min–max); "
        f"clients ({args.clients}): VP8 {args.size} 30 fps at {TARGET_BITRATE // 1000} "
        "kbit/s + Opus, 127.0.0.1 (janus: a veth pair in its namespace, see netns.sh); "
        f"nproc {os.cpu_count()}, load average before "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    summaries = [summary(runs[m]) for m in modes]
    print(table(summaries))
    by_mode = {s["mode"]: s for s in summaries}
    naive, janus_row = by_mode.get("naive"), by_mode.get("janus")
    for ours in ("forward", "forward-uvloop", "workers"):
        fwd = by_mode.get(ours)
        if fwd and naive and fwd["cpu_per_call"]:
            for label, key in (
                ("measured CPU per call", "cpu_per_call"),
                ("CPU per call normalised to 325 pkt/s", "cpu_per_call_at_ref"),
            ):
                pairs = zip(runs[ours], runs["naive"], strict=True)
                ratios = sorted(n[key] / f[key] for f, n in pairs if f[key] and n[key])
                print(
                    f"naive / {ours}, {label}: {naive[key] / fwd[key]:.1f}x "
                    f"(per-run {', '.join(f'{r:.1f}' for r in ratios)})"
                )
        if fwd and janus_row:
            for label, key in (
                ("CPU per call", "cpu_per_call"),
                ("CPU per call at 325 pkt/s", "cpu_per_call_at_ref"),
                ("memory per call", "mem_per_call_mib"),
                ("latency p50", "p50_ms"),
                ("latency p95", "p95_ms"),
            ):
                if fwd[key] is not None and janus_row[key]:
                    print(f"{ours} / Janus, {label}: {fwd[key] / janus_row[key]:.2f}x")
    if naive and not all(kept_up(r) for r in runs["naive"]):
        print(
            "naive mode did not keep up in every run (fps below 28.5 or frames missing): its "
            "measured CPU is what it managed to use, not what 30 fps would need; the figure "
            "normalised to 325 pkt/s is its CPU per packet it delivered times the full rate"
        )
    if args.json:
        write_json(args.json, {"runs": runs, "summary": summaries})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--modes", default="forward,naive")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--deadline", type=float, default=900, help="seconds for the whole run")
    parser.add_argument("--json", help="write every run's figures here")
    parser.add_argument("--profile", help="cProfile the forward server's measured window")
    parser.add_argument("--workers", type=int, default=2, help="workers mode: media processes")
    parser.add_argument(
        "--light",
        action="store_true",
        help="receivers count frames by RTP timestamp instead of decoding them (LightReceivers)",
    )
    parser.add_argument(
        "--core-share",
        type=float,
        default=0.0,
        help="cap every server process at this share of one core (a cgroup each; root): "
        "emulates a node with slower cores so that the clients keep enough of the machine",
    )
    parser.add_argument(
        "--find-capacity",
        help="comma-separated call counts to try, in order, per mode (stops at the first that "
        "does not keep up): recorded calls per node",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--role", choices=["orchestrator", "server", "client"], default="orchestrator"
    )
    parser.add_argument("--mode", choices=MODES, default="forward")
    parser.add_argument("--record-dir", default=tempfile.gettempdir())
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--call-id", default="c0")
    parser.add_argument(
        "--clients",
        choices=["replay", "encode"],
        default="replay",
        help="replay: VP8 encoded once at 1 Mbit/s and replayed (clients cheap, so they "
        "really send 30 fps on a busy 2-core machine); encode: aiortc encodes live",
    )
    parser.add_argument("--replay-file", help=argparse.SUPPRESS)
    parser.add_argument(
        "--janus-interface",
        default="tbv0",
        help="janus mode: the only interface Janus may use for ICE (see bench/media/netns.sh)",
    )
    parser.add_argument(
        "--client-address",
        default="10.77.0.2",
        help="janus mode: the clients' ICE host address (in the same namespace)",
    )
    parser.add_argument("--janus-url", help=argparse.SUPPRESS)
    parser.add_argument("--janus-room", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--janus-rec-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        if args.mode == "forward-uvloop":  # the same server on uvloop's event loop
            import uvloop

            uvloop.run(server_main("forward", args.record_dir, args.profile))
        elif args.mode == "workers":
            import uvloop

            uvloop.run(workers_server_main(args.workers, args.record_dir))
        else:
            asyncio.run(server_main(args.mode, args.record_dir, args.profile))
    elif args.role == "client":
        w, h = (int(x) for x in args.size.split("x"))
        asyncio.run(client_main(args))
    else:
        if args.clients == "replay":
            from media.testing import encode_vp8_loop

            w, h = (int(x) for x in args.size.split("x"))
            frames = encode_vp8_loop(w, h, REPLAY_FRAMES, TARGET_BITRATE, NOISE)
            fd, args.replay_file = tempfile.mkstemp(prefix="bench-media-", suffix=".vp8")
            os.close(fd)
            save_frames(args.replay_file, frames)
        try:
            asyncio.run(asyncio.wait_for(orchestrate(args), args.deadline))
        except TimeoutError:
            sys.exit(f"benchmark exceeded --deadline {args.deadline:.0f} s; processes killed")
        finally:
            if args.clients == "replay":
                os.unlink(args.replay_file)


if __name__ == "__main__":
    main()
