"""R7 (issue 4, "Show"): the real server is SIGKILLed in the middle of a recorded call. At the
next start the call is ended (``media_failure``) and its archive, remuxed from the crash-safe
dump, opens and holds the media up to at most 1 s before the kill."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import av
from aiohttp import ClientSession, CookieJar

from media.testing import decode_number
from tests.conftest import Api, SocketUser
from tests.integration.calls.test_call_with_media import Participant
from tests.integration.signaling.test_calls import ID17, check_digit

BIN = Path(sys.executable).parent
KILL_LOSS_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)  # polling interval, not a wait for an event


class ServerProcess:
    def __init__(self, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "TONGBAN_DATA_DIR": str(data_dir),
            "TONGBAN_MEDIA_ADDRESSES": "127.0.0.1",
        }
        for name in ("TONGBAN_DATABASE_URL", "TONGBAN_RECORDINGS_URL", "TONGBAN_REDIS_URL"):
            self.env.pop(name, None)
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0

    async def run(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "tongban"), *args, env=self.env, stdout=asyncio.subprocess.DEVNULL
        )
        assert await asyncio.wait_for(proc.wait(), 60) == 0

    async def start(self) -> None:
        self.runs += 1
        log = await asyncio.to_thread(open, self.data_dir / f"serve-{self.runs}.log", "wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                str(BIN / "tongban"),
                "serve",
                "--port",
                str(self.port),
                env=self.env,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()

        async def healthy() -> bool:
            assert self.proc is not None and self.proc.returncode is None, self.log()
            try:
                async with ClientSession() as http, http.get(self.url + "/healthz") as resp:
                    return resp.status in (200, 503)
            except OSError:
                return False

        await until(healthy, 30, "the server to listen")

    def log(self) -> str:
        return (self.data_dir / f"serve-{self.runs}.log").read_text(errors="replace")[-3000:]

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@asynccontextmanager
async def browsers(url: str) -> AsyncIterator[Callable[[str], Awaitable[Api]]]:
    opened: list[Api] = []

    async def login(username: str) -> Api:
        api = Api(ClientSession(base_url=url, cookie_jar=CookieJar(unsafe=True)))
        opened.append(api)
        status, body = await api.login(username)
        assert status == 200, body
        return api

    try:
        yield login
    finally:
        for api in opened:
            await api.http.close()


async def test_sigkill_mid_call_leaves_a_playable_archive(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.data_dir.mkdir()
    await server.run("demo")
    await server.start()
    peers: list[Participant] = []
    users: list[SocketUser] = []
    try:
        async with browsers(server.url) as login:
            caller_api = await login("zz.a1")
            status, case = await caller_api.post(
                "/api/cases",
                {
                    "matter_code": "HN-ZJ-001",
                    "region_code": "410727",
                    "applicant_name": "张三",
                    "applicant_id_number": ID17 + check_digit(ID17),
                },
            )
            assert status == 201, case
            caller = SocketUser(caller_api, "zz.a1")
            callee = SocketUser(await login("fq.h1"), "fq.h1")
            users += [caller, callee]
            for user in users:
                await user.connect(server.url)
            ack = await caller.call("call:request", {"case_id": case["id"]})
            call_id = ack["call_id"]
            assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
            assert (await caller.next("call:recording"))["state"] == "recording"
            a, b = Participant(caller, call_id), Participant(callee, call_id)
            peers += [a, b]
            await a.offer()
            await b.offer()
            await a.follow_renegotiation()
            camera = a.peer.tracks["camera"]

            async def media_for(seconds: float) -> bool:
                return all(len(r.numbers) >= seconds * 30 for r in b.video()) and bool(b.video())

            await a.peer.wait_for(lambda: bool(b.video()), within=20, what="media")
            await until(lambda: media_for(4), 20, "4 s of media through the server")
            killed_at = time.time()
            sent_by_kill = camera.count
            await server.kill()

        for p in peers:
            await p.peer.close()
        for user in users:
            await user.close()

        await server.start()  # recovery runs before the server listens
        async with browsers(server.url) as login:
            status, call = await (await login("zz.a1")).get(f"/api/calls/{call_id}")
            assert status == 200, call
            assert call["state"] == "ended" and call["end_reason"] == "media_failure", call
            auditor = await login("fq.audit")
            status, found = await auditor.get(f"/api/recordings?case_no={case['case_no']}")
            assert status == 200 and len(found["recordings"]) == 1, found
            rec = found["recordings"][0]
            assert rec["call_id"] == call_id and rec["state"] == "ready", rec
            status, archive = await auditor.get(f"/api/recordings/{rec['id']}/download")
            assert status == 200
        path = tmp_path / "recovered.mkv"
        path.write_bytes(archive)
        last = await asyncio.to_thread(last_frame_number, path, "zz.a1 camera")
        assert last in camera.sent_at, (last, sent_by_kill)
        lost = killed_at - camera.sent_at[last]
        assert lost <= KILL_LOSS_S, f"the archive ends {lost:.2f}s before the kill"
        assert not list((server.data_dir / "recording-work").glob("*.tbdump"))
    finally:
        for p in peers:
            await p.peer.close()
        await server.stop()


def last_frame_number(path: Path, title: str) -> int:
    """Decode the titled video track to its end; return the number its last frame shows."""
    with av.open(str(path)) as container:
        assert len(container.streams.video) >= 2 and container.streams.audio
        stream = next(v for v in container.streams.video if v.metadata.get("title") == title)
        last = -1
        for frame in container.decode(stream):
            last = decode_number(frame)
    assert last > 0
    return last
