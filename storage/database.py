"""The database handle services share, plus the append-only audit log writer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import schema


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


async def audit(
    conn: AsyncConnection,
    *,
    at: datetime,
    actor: str,
    action: str,
    result: str,
    actor_id: int | None = None,
    target: str = "",
    source: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit record in the caller's transaction, so the action and its record
    commit together or not at all."""
    await conn.execute(
        sa.insert(schema.audit_log).values(
            at=at,
            actor_id=actor_id,
            actor=actor[:60],
            action=action,
            target=target[:200],
            result=result,
            source=source[:64],
            detail=detail,
        )
    )
