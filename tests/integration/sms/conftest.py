"""The SMS tests: the Aliyun double, the app with only the SMS part, workers on a test
database, and a polling helper (no sleeping for events)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

# import-mode=importlib puts no test folder on sys.path; tests/support lives at the root
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sms import outbox
from sms.outbox import Entry
from sms.providers import AliyunProvider
from sms.worker import SmsWorker, WorkerOptions
from storage import schema as s
from storage.database import Database
from storage.db import create_engine
from tests.support.aliyun_double import AliyunDouble
from tongban.settings import Secret, Settings
from web.metrics import Metrics

T = TypeVar("T")
ADMIN_PASSWORD = "Demo#2026"


async def eventually(
    check: Callable[[], Awaitable[T | None]], within: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def all_entries(db: Database) -> list[Entry]:
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(s.sms_outbox.c.id).order_by(s.sms_outbox.c.id))
        found = [await outbox.get(conn, row.id) for row in rows]
    return [e for e in found if e is not None]


async def enqueue(
    db: Database, key: str, phone: str, template: str, params: dict[str, Any], now: Any
) -> None:
    async with db.begin() as conn:
        assert await outbox.enqueue(
            conn, dedupe_key=key, phone=phone, template=template, params=params, now=now
        )


@pytest.fixture
async def double() -> AsyncIterator[AliyunDouble]:
    fake = AliyunDouble()
    await fake.start()
    yield fake
    await fake.stop()


@dataclass
class SmsApp:
    app: Any
    client: TestClient[Any, Any]
    settings: Settings

    @property
    def services(self) -> Any:
        from web.state import SERVICES

        return self.app[SERVICES]

    @property
    def worker(self) -> SmsWorker:
        from sms.http import SMS_WORKER

        return self.app[SMS_WORKER]

    async def login(self, username: str) -> None:
        resp = await self.client.post(
            "/api/login", json={"username": username, "password": ADMIN_PASSWORD}
        )
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def sms_app(
    make_settings: Callable[..., Settings], aiohttp_client: Any, clock: Any
) -> Callable[..., Awaitable[SmsApp]]:
    """The real app with the SMS part only (other parts are not this package's business).
    ``make_settings`` comes first so that the app stops before its test database is dropped."""
    from sms.http import setup
    from web.app import create_app

    async def start(**overrides: Any) -> SmsApp:
        settings = make_settings(**overrides)
        app = create_app(settings, clock=clock, parts=(setup,))
        client = await aiohttp_client(app)
        return SmsApp(app, client, settings)

    return start


@dataclass
class Node:
    """One worker with its own engine: what a second server process would be."""

    db: Database
    worker: SmsWorker
    metrics: Metrics


@pytest.fixture
async def make_node(
    database_url: str, clock: Any, double: AliyunDouble
) -> AsyncIterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def make(name: str = "node", *, timeout: float = 2.0, concurrency: int = 4) -> Node:
        db = Database(create_engine(database_url))
        provider = AliyunProvider(
            access_key_id=double.access_key_id,
            access_key_secret=Secret(double.access_key_secret),
            sign_name=double.sign_name,
            template_codes=double.template_codes,
            endpoint=double.url,
            timeout=timeout,
            connect_timeout=1.0,
        )
        metrics = Metrics()
        worker = SmsWorker(
            db,
            provider,
            clock,
            metrics,
            node_id=f"{name}-{len(nodes)}",
            concurrency=concurrency,
            options=WorkerOptions(poll=0.2, drain=5.0),
        )
        node = Node(db, worker, metrics)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.worker.stop()
        await node.db.close()
