"""Shared fixtures: a migrated database with the demo data, on SQLite and on the real
PostgreSQL server, cloned fresh for every test; the app on it; a clock tests can move."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient

from directory.demo import load_demo
from storage.db import create_engine, migrate
from tongban.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get(
    "TONGBAN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
RUN_ID = uuid.uuid4().hex[:8]
DEMO_PASSWORD = "Demo#2026"


class FakeClock:
    """Wall time that only moves when a test says so (or follows real time, shifted)."""

    def __init__(self, start: datetime | None = None, *, follow_real_time: bool = True) -> None:
        self._offset = (start - datetime.now(UTC)) if start else timedelta()
        self._frozen: datetime | None = None if follow_real_time else start

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC) + self._offset

    def advance(self, **delta: float) -> None:
        step = timedelta(**delta)
        if self._frozen is not None:
            self._frozen += step
        else:
            self._offset += step


async def _pg_exec(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _build_template(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await load_demo(conn, datetime.now(UTC))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def db_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Built once a run: a migrated database with demo data, per backend."""
    folder = tmp_path_factory.mktemp("templates")
    sqlite_file = folder / "template.sqlite3"
    pg_name = f"tongban_tpl_{RUN_ID}"

    async def build() -> None:
        await _build_template(f"sqlite+aiosqlite:///{sqlite_file}")
        await _pg_exec(f'DROP DATABASE IF EXISTS "{pg_name}"')
        await _pg_exec(f'CREATE DATABASE "{pg_name}"')
        await _build_template(_pg_url(pg_name))

    asyncio.run(build())
    yield {"sqlite": str(sqlite_file), "postgresql": pg_name}
    asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, db_templates: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A fresh copy of the demo database for one test."""
    if backend == "sqlite":
        target = tmp_path / "tongban.sqlite3"
        shutil.copyfile(db_templates["sqlite"], target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    name = f"tongban_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{db_templates["postgresql"]}"'))
    yield _pg_url(name)
    asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "database_url": database_url,
            "ring_timeout": 60.0,
            "ring_limit": 300.0,
            # media in the test process; tests of the worker processes ask for them
            "media_workers": 0,
        }
        base.update(overrides)
        return load_settings({}, **base)

    return make


@dataclass
class Api:
    """One browser: its own cookie jar, talking to the test server."""

    http: ClientSession

    async def login(self, username: str, password: str = DEMO_PASSWORD) -> tuple[int, Any]:
        return await self.post("/api/login", {"username": username, "password": password})

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(path, **kw) as resp:
            return resp.status, await _body(resp)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(path, json=body if body is not None else {}, **kw) as resp:
            return resp.status, await _body(resp)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.http.patch(path, json=body if body is not None else {}, **kw) as resp:
            return resp.status, await _body(resp)

    @property
    def session_cookie(self) -> str | None:
        for cookie in self.http.cookie_jar:
            if cookie.key == "tongban_session":
                return cookie.value
        return None


async def _body(resp: Any) -> Any:
    if resp.content_type == "application/json":
        return await resp.json()
    return await resp.read()


@dataclass
class Server:
    app: Any
    client: TestClient[Any, Any]
    settings: Settings
    browsers: list[Api]

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def browser(self, username: str | None = None) -> Api:
        api = Api(ClientSession(base_url=self.url, cookie_jar=CookieJar(unsafe=True)))
        self.browsers.append(api)
        if username is not None:
            status, body = await api.login(username)
            assert status == 200, body
        return api

    @property
    def services(self) -> Any:
        from web.state import SERVICES

        return self.app[SERVICES]


@pytest.fixture
async def start_server(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[Callable[..., Any]]:
    """Start the real app on the test database; ``await start_server(**settings)``."""
    from web.app import create_app

    servers: list[Server] = []

    async def start(**overrides: Any) -> Server:
        settings = make_settings(**overrides)
        app = create_app(settings, clock=clock)
        client = await aiohttp_client(app)
        server = Server(app, client, settings, [])
        servers.append(server)
        return server

    yield start
    for server in servers:
        for api in server.browsers:
            await api.http.close()


class SocketUser:
    """A python-socketio client logged in as one user, with every event it receives queued."""

    def __init__(self, api: Api, username: str) -> None:
        import socketio

        self.api = api
        self.username = username
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, asyncio.Queue[Any]] = {}
        self.seen: list[tuple[str, Any]] = []

        @self.client.on("*")
        async def catch_all(event: str, data: Any = None) -> None:
            self.seen.append((event, data))
            self.queue(event).put_nowait(data)

    def queue(self, event: str) -> asyncio.Queue[Any]:
        return self.events.setdefault(event, asyncio.Queue())

    async def connect(self, url: str) -> None:
        cookie = self.api.session_cookie
        await self.client.connect(
            url,
            headers={"Cookie": f"tongban_session={cookie}"} if cookie else {},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.client.call(event, data, timeout=timeout)

    async def next(self, event: str, timeout: float = 10) -> Any:
        return await asyncio.wait_for(self.queue(event).get(), timeout)

    def pending(self, event: str) -> int:
        return self.queue(event).qsize()

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[..., Any]]:
    """``await sockets(server, "fq.h1")``: logs in over HTTP and connects Socket.IO."""
    opened: list[SocketUser] = []

    async def connect(server: Server, username: str, *, api: Api | None = None) -> SocketUser:
        api = api or await server.browser(username)
        user = SocketUser(api, username)
        await user.connect(server.url)
        opened.append(user)
        return user

    yield connect
    for user in opened:
        await user.close()
