"""Login sessions (R8): one active session per account, idle and absolute timeouts, lockout.

The cookie carries a random token; only its SHA-256 is stored, so a copy of the database
opens no session.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory import store
from directory.model import Account
from directory.passwords import LockoutPolicy, verify_password
from storage import schema as s
from storage import sqlfast
from storage.database import Database, audit
from tongban.clock import Clock
from tongban.errors import Locked, Unauthenticated

# Told when a session ends by force (login elsewhere, account disabled): session id, reason.
RevocationListener = Callable[[str, str], Awaitable[None]]

TOUCH_EVERY = timedelta(seconds=60)

SESSION_BY_ID = sa.select(s.sessions).where(s.sessions.c.id == sa.bindparam("sid"))
TOUCH_SESSION = (
    sa.update(s.sessions)
    .where(s.sessions.c.id == sa.bindparam("sid"))
    .values(last_seen_at=sa.bindparam("now"))
)
EXPIRE_SESSION = (
    sa.update(s.sessions)
    .where(s.sessions.c.id == sa.bindparam("sid"))
    .values(revoked_at=sa.bindparam("now"), revoked_reason="expired")
)


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    account: Account
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)


class SessionService:
    def __init__(self, db: Database, clock: Clock, policy: SessionPolicy) -> None:
        self._db = db
        self._clock = clock
        self.policy = policy
        self._listeners: list[RevocationListener] = []

    def on_revoked(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    async def _notify(self, session_ids: list[str], reason: str) -> None:
        for sid in session_ids:
            for listener in self._listeners:
                await listener(sid, reason)

    async def login(self, username: str, password: str, source: str) -> tuple[str, Session]:
        now = self._clock.now()
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(s.accounts).where(s.accounts.c.username == username))
            ).first()
        if row is not None and self.policy.lockout.locked(row.locked_until, now):
            async with self._db.begin() as conn:
                await audit(
                    conn,
                    at=now,
                    actor=username,
                    actor_id=row.id,
                    action="login",
                    target=username,
                    result="locked",
                    source=source,
                )
            raise Locked(
                "连续登录失败次数过多，账号已锁定，请 30 分钟后再试或联系管理员",
                locked_until=row.locked_until.isoformat(),
            )
        # argon2 takes a good fraction of a second of CPU by design: off the event loop
        right = await asyncio.to_thread(
            verify_password, row.password_hash if row is not None else None, password
        )
        if row is None or not right or row.disabled:
            result = "unknown_user" if row is None else ("disabled" if right else "bad_password")
            async with self._db.begin() as conn:
                await audit(
                    conn,
                    at=now,
                    actor=username,
                    actor_id=row.id if row else None,
                    action="login",
                    target=username,
                    result=result,
                    source=source,
                )
                if row is not None and result == "bad_password":
                    await self._count_failure(conn, row.id, username, source, now)
            raise Unauthenticated("用户名或密码错误", code="bad_credentials")
        async with self._db.begin() as conn:
            token, sid, replaced = await self._open(conn, row.id, username, source, now)
            account = await store.account_by_id(conn, row.id)
        assert account is not None
        await self._notify(replaced, "replaced")
        return token, Session(sid, account, now, now + self.policy.absolute)

    async def _count_failure(
        self, conn: AsyncConnection, account_id: int, username: str, source: str, now: datetime
    ) -> None:
        """Counted in the database (``failed_logins + 1``) so concurrent failures all count."""
        failed = await conn.scalar(
            sa.update(s.accounts)
            .where(s.accounts.c.id == account_id)
            .values(failed_logins=s.accounts.c.failed_logins + 1)
            .returning(s.accounts.c.failed_logins)
        )
        if failed is not None and failed >= self.policy.lockout.attempts:
            until = now + self.policy.lockout.duration
            await conn.execute(
                sa.update(s.accounts)
                .where(s.accounts.c.id == account_id)
                .values(failed_logins=0, locked_until=until)
            )
            await audit(
                conn,
                at=now,
                actor="system",
                action="account.lockout",
                target=username,
                result="locked",
                source=source,
                detail={"until": until.isoformat()},
            )

    async def _open(
        self, conn: AsyncConnection, account_id: int, username: str, source: str, now: datetime
    ) -> tuple[str, str, list[str]]:
        """A new session; every other live session of the account ends (one at a time)."""
        replaced = await _revoke_live(conn, account_id, "replaced", now)
        token = secrets.token_urlsafe(32)
        sid = token_id(token)
        await conn.execute(
            sa.insert(s.sessions).values(
                id=sid,
                account_id=account_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + self.policy.absolute,
                source=source[:64],
            )
        )
        await conn.execute(
            sa.update(s.accounts)
            .where(s.accounts.c.id == account_id)
            .values(failed_logins=0, locked_until=None)
        )
        await audit(
            conn,
            at=now,
            actor=username,
            actor_id=account_id,
            action="login",
            target=username,
            result="ok",
            source=source,
            detail={"replaced_sessions": len(replaced)} if replaced else None,
        )
        return token, sid, replaced

    async def resolve(self, token: str | None) -> Session:
        """The live session for a cookie, or ``Unauthenticated`` saying why not."""
        if not token:
            raise Unauthenticated("请先登录", code="unauthenticated")
        return await self.resolve_id(token_id(token))

    async def resolve_id(self, sid: str, *, touch: bool = True) -> Session:
        now = self._clock.now()
        async with self._db.lazy() as conn:
            # storage/sqlfast.py: on the server's SQLite these reads take no trip to aiosqlite's
            # thread. Every socket's session is checked again every 15 s (signaling/server.py)
            # and every HTTP request checks it: through SQLAlchemy and aiosqlite that was one
            # millisecond of each call request's share at 100 requests/s (bench/signaling)
            found = await sqlfast.fetch(conn, SESSION_BY_ID, {"sid": sid})
            row = found[0] if found else None
            if row is None:
                raise Unauthenticated("请先登录", code="unauthenticated")
            if row.revoked_at is not None:
                if row.revoked_reason == "replaced":
                    raise Unauthenticated(
                        "该账号已在其他地方登录，本会话已结束", code="session_replaced"
                    )
                raise Unauthenticated("会话已结束，请重新登录", code="session_revoked")
            if now >= row.expires_at or now - row.last_seen_at > self.policy.idle:
                async with self._db.writing(conn):
                    await sqlfast.changes(
                        conn, [(EXPIRE_SESSION, {"sid": sid, "now": now})], commit=True
                    )
                await conn.commit()  # here too (PostgreSQL): the refusal below rolls back
                raise Unauthenticated(
                    "长时间未操作，会话已过期，请重新登录", code="session_expired"
                )
            account = await store.account_by_id(conn, row.account_id)
            if account is None or account.disabled:
                raise Unauthenticated("账号已停用", code="session_revoked")
            if touch and now - row.last_seen_at >= TOUCH_EVERY:
                async with self._db.writing(conn):
                    await sqlfast.changes(
                        conn, [(TOUCH_SESSION, {"sid": sid, "now": now})], commit=True
                    )
        return Session(sid, account, row.created_at, row.expires_at)

    async def logout(self, session: Session, source: str) -> None:
        now = self._clock.now()
        async with self._db.begin() as conn:
            await conn.execute(
                sa.update(s.sessions)
                .where(s.sessions.c.id == session.id, s.sessions.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="logout")
            )
            await audit(
                conn,
                at=now,
                actor=session.account.username,
                actor_id=session.account.id,
                action="logout",
                target=session.account.username,
                result="ok",
                source=source,
            )
        await self._notify([session.id], "logout")

    async def keep_alive(self, session_ids: list[str]) -> None:
        """Sessions of clerks who wait on duty with the console open (no clicks for a while)
        stay alive; the absolute timeout still ends them."""
        if not session_ids:
            return
        now = self._clock.now()
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(s.sessions)
                .where(
                    s.sessions.c.id.in_(session_ids),
                    s.sessions.c.revoked_at.is_(None),
                    s.sessions.c.expires_at > now,
                )
                .values(last_seen_at=now)
            )

    async def revoke_account(self, account_id: int, reason: str) -> None:
        now = self._clock.now()
        async with self._db.begin() as conn:
            ids = await _revoke_live(conn, account_id, reason, now)
        await self._notify(ids, reason)


async def _revoke_live(
    conn: AsyncConnection, account_id: int, reason: str, now: datetime
) -> list[str]:
    """End every live session of an account; returns their ids (to tell their sockets)."""
    ids = list(
        await conn.scalars(
            sa.select(s.sessions.c.id).where(
                s.sessions.c.account_id == account_id, s.sessions.c.revoked_at.is_(None)
            )
        )
    )
    if ids:
        await conn.execute(
            sa.update(s.sessions)
            .where(s.sessions.c.id.in_(ids))
            .values(revoked_at=now, revoked_reason=reason)
        )
    return ids
