"""The reference: Janus 1.1.2 (Debian's ``janus``) VideoRoom with recording, same clients.

Used by ``bench.media.run --modes ...,janus``. Janus runs with a config folder of our own:
only the VideoRoom plugin and the HTTP transport, bound to 127.0.0.1; no STUN/TURN; ICE only
on the interface given (Janus leaves loopback out of its candidates), which must be one we
created: run the whole benchmark inside the namespace of ``bench/media/netns.sh``.

Each participant publishes on one peer connection (the client offers) and subscribes to the
other on a second one (Janus offers), as the VideoRoom works.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import shutil
import tempfile
from typing import Any

JANUS = "/usr/bin/janus"
LIB = "/usr/lib/x86_64-linux-gnu/janus"
HTTP_PORT = 18088


def write_config(folder: str, interface: str) -> str:
    """Config folder with symlinked plugin/transport folders holding just what we load."""
    plugins = os.path.join(folder, "plugins")
    transports = os.path.join(folder, "transports")
    for sub in (
        plugins,
        transports,
        os.path.join(folder, "events"),
        os.path.join(folder, "loggers"),
    ):
        os.makedirs(sub, exist_ok=True)
    os.symlink(
        f"{LIB}/plugins/libjanus_videoroom.so", os.path.join(plugins, "libjanus_videoroom.so")
    )
    os.symlink(f"{LIB}/transports/libjanus_http.so", os.path.join(transports, "libjanus_http.so"))
    main = os.path.join(folder, "janus.jcfg")
    with open(main, "w") as f:
        f.write(
            f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{plugins}"
    transports_folder = "{transports}"
    events_folder = "{folder}/events"
    loggers_folder = "{folder}/loggers"
    debug_level = 3
    session_timeout = 60
}}
certificates: {{}}
media: {{
    ipv6 = false
    rtp_port_range = "40000-49999"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{interface}"
    ignore_mdns = true
}}
plugins: {{}}
transports: {{}}
loggers: {{}}
events: {{
    broadcast = false
}}
"""
        )
    with open(os.path.join(folder, "janus.transport.http.jcfg"), "w") as f:
        f.write(
            f"""general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {HTTP_PORT}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"""
        )
    with open(os.path.join(folder, "janus.plugin.videoroom.jcfg"), "w") as f:
        f.write("general: {\n}\n")
    return main


class JanusServer:
    """Janus started by hand in its own config folder; ``stop`` kills it and cleans up."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.folder = tempfile.mkdtemp(prefix="bench-janus-")
        self.rec_dir = os.path.join(self.folder, "recordings")
        os.makedirs(self.rec_dir)
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{HTTP_PORT}/janus"

    async def start(self) -> None:
        import aiohttp

        main = write_config(self.folder, self.interface)
        log = os.path.join(self.folder, "janus.log")
        self.proc = await asyncio.create_subprocess_exec(
            JANUS,
            "-C",
            main,
            "-F",
            self.folder,
            "-o",
            "-N",
            "-L",
            log,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{self.url}/info") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)  # waiting for Janus's HTTP port to open
        raise RuntimeError(f"Janus did not start; see {log}")

    def recorded_bytes(self) -> int:
        return sum(os.path.getsize(os.path.join(self.rec_dir, f)) for f in os.listdir(self.rec_dir))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class JanusSession:
    """A client's Janus HTTP session: requests, and events matched by transaction/handle."""

    def __init__(self, url: str) -> None:
        import aiohttp

        self.url = url
        self.http = aiohttp.ClientSession()
        self.session_id = 0
        self._events: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._webrtcup: dict[int, asyncio.Event] = {}
        self._poller: asyncio.Task[None] | None = None
        self._ids = itertools.count()

    def _tx(self) -> str:
        return f"t{next(self._ids)}-{secrets.token_hex(4)}"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(f"{self.url}{path}", json=body) as r:
            reply: dict[str, Any] = await r.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus error: {reply}")
        return reply

    async def create(self) -> None:
        reply = await self._post("", {"janus": "create", "transaction": self._tx()})
        self.session_id = int(reply["data"]["id"])
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def attach(self) -> int:
        reply = await self._post(
            f"/{self.session_id}",
            {"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": self._tx()},
        )
        handle = int(reply["data"]["id"])
        self._webrtcup[handle] = asyncio.Event()
        return handle

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A VideoRoom request; returns the synchronous answer or the asynchronous event."""
        tx = self._tx()
        msg: dict[str, Any] = {"janus": "message", "transaction": tx, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        future = asyncio.get_running_loop().create_future()
        self._events[tx] = future
        reply = await self._post(f"/{self.session_id}/{handle}", msg)
        if reply.get("janus") == "success":
            self._events.pop(tx, None)
            return reply
        return await asyncio.wait_for(future, 30)

    async def webrtcup(self, handle: int, within: float = 30) -> None:
        await asyncio.wait_for(self._webrtcup[handle].wait(), within)

    async def _poll(self) -> None:
        """Long-poll for events (also keeps the session alive)."""
        while True:
            try:
                async with self.http.get(
                    f"{self.url}/{self.session_id}", params={"maxev": "10"}
                ) as r:
                    events = await r.json(content_type=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.2)  # transient: Janus busy or restarting
                continue
            for event in events if isinstance(events, list) else [events]:
                kind = event.get("janus")
                if kind == "webrtcup" and event.get("sender") in self._webrtcup:
                    self._webrtcup[event["sender"]].set()
                future = self._events.pop(str(event.get("transaction", "")), None)
                if future is not None and kind == "event" and not future.done():
                    future.set_result(event)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        try:
            await self._post(f"/{self.session_id}", {"janus": "destroy", "transaction": self._tx()})
        except Exception:
            pass  # Janus already gone
        await self.http.close()


async def create_room(session: JanusSession, room: int, rec_dir: str) -> None:
    handle = await session.attach()
    await session.message(
        handle,
        {
            "request": "create",
            "room": room,
            "publishers": 2,
            "videocodec": "vp8",
            "audiocodec": "opus",
            "record": True,
            "rec_dir": rec_dir,
        },
    )
