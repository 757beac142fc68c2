"""Account management (R8): the admin creates, disables and resets; staff change their own
password. Every change is audited in the same transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from directory import store
from directory.model import ROLES, Account
from directory.passwords import check_password_rule, hash_password, verify_password
from storage import schema as s
from storage.database import Database, audit
from tongban.clock import Clock
from tongban.errors import Conflict, Forbidden, InvalidInput, NotFound

# Called with an account id whose sessions must end now (disable, password reset).
RevokeSessions = Callable[[int, str], Awaitable[None]]


async def _audit(
    conn: AsyncConnection,
    now: datetime,
    actor: Account | None,
    action: str,
    username: str,
    source: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """An account change by the admin (or by ``system`` from the command line)."""
    await audit(
        conn,
        at=now,
        actor=actor.username if actor else "system",
        actor_id=actor.id if actor else None,
        action=action,
        target=username,
        result="ok",
        source=source,
        detail=detail,
    )


class AccountService:
    def __init__(self, db: Database, clock: Clock, revoke: RevokeSessions) -> None:
        self._db = db
        self._clock = clock
        self._revoke = revoke

    async def create(
        self,
        *,
        actor: Account | None,
        source: str,
        username: str,
        display_name: str,
        role: str,
        agency_region: str,
        password: str,
        mobile: str = "",
        department: str = "",
        window_codes: Sequence[str] = (),
    ) -> Account:
        if role not in ROLES:
            raise InvalidInput(f"角色必须是 {', '.join(ROLES)} 之一", code="bad_role")
        if (
            not username
            or len(username) > 60
            or not username.replace(".", "").replace("_", "").replace("-", "").isalnum()
        ):
            raise InvalidInput("用户名只能包含字母、数字、点、下划线和连字符", code="bad_username")
        if mobile and not (mobile.isdigit() and len(mobile) == 11):
            raise InvalidInput("手机号码必须是 11 位数字", code="bad_mobile")
        check_password_rule(password, username=username)
        now = self._clock.now()
        async with self._db.begin() as conn:
            agency_id = await conn.scalar(
                sa.select(s.agencies.c.id).where(s.agencies.c.region_code == agency_region)
            )
            if agency_id is None:
                raise NotFound(f"没有区划代码为 {agency_region} 的机构", code="agency_not_found")
            window_ids = []
            for code in window_codes:
                wid = await conn.scalar(sa.select(s.windows.c.id).where(s.windows.c.code == code))
                if wid is None:
                    raise NotFound(f"没有窗口 {code}", code="window_not_found")
                window_ids.append(wid)
            try:
                account_id = await conn.scalar(
                    sa.insert(s.accounts)
                    .values(
                        username=username,
                        display_name=display_name or username,
                        role=role,
                        agency_id=agency_id,
                        mobile=mobile,
                        department=department,
                        password_hash=await asyncio.to_thread(hash_password, password),
                        created_at=now,
                        password_changed_at=now,
                    )
                    .returning(s.accounts.c.id)
                )
            except IntegrityError as err:
                raise Conflict(f"用户名 {username} 已存在", code="username_taken") from err
            for wid in window_ids:
                await conn.execute(
                    sa.insert(s.account_windows).values(account_id=account_id, window_id=wid)
                )
            await _audit(
                conn,
                now,
                actor,
                "account.create",
                username,
                source,
                detail={"role": role, "agency": agency_region, "windows": list(window_codes)},
            )
            created = await store.account_by_id(conn, int(account_id))
        assert created is not None
        return created

    async def set_disabled(
        self, *, actor: Account | None, source: str, username: str, disabled: bool
    ) -> Account:
        now = self._clock.now()
        async with self._db.begin() as conn:
            account = await store.account_by_username(conn, username)
            if account is None:
                raise NotFound(f"没有账号 {username}", code="account_not_found")
            if actor is not None and account.id == actor.id and disabled:
                raise Forbidden("不能停用自己的账号", code="cannot_disable_self")
            await conn.execute(
                sa.update(s.accounts).where(s.accounts.c.id == account.id).values(disabled=disabled)
            )
            await _audit(
                conn,
                now,
                actor,
                "account.disable" if disabled else "account.enable",
                username,
                source,
            )
        if disabled:
            await self._revoke(account.id, "disabled")
        updated = await self.get(username)
        return updated

    async def reset_password(
        self, *, actor: Account | None, source: str, username: str, password: str
    ) -> None:
        check_password_rule(password, username=username)
        now = self._clock.now()
        async with self._db.begin() as conn:
            account = await store.account_by_username(conn, username)
            if account is None:
                raise NotFound(f"没有账号 {username}", code="account_not_found")
            await conn.execute(
                sa.update(s.accounts)
                .where(s.accounts.c.id == account.id)
                .values(
                    password_hash=await asyncio.to_thread(hash_password, password),
                    password_changed_at=now,
                    failed_logins=0,
                    locked_until=None,
                )
            )
            await _audit(conn, now, actor, "account.password_reset", username, source)
        await self._revoke(account.id, "password_reset")

    async def change_own_password(
        self, *, account: Account, source: str, current: str, new: str
    ) -> None:
        now = self._clock.now()
        async with self._db.begin() as conn:
            stored = await conn.scalar(
                sa.select(s.accounts.c.password_hash).where(s.accounts.c.id == account.id)
            )
            right = await asyncio.to_thread(verify_password, stored, current)
            if not right:
                # recorded and committed; the refusal is raised after the transaction
                await audit(
                    conn,
                    at=now,
                    actor=account.username,
                    actor_id=account.id,
                    action="account.password_change",
                    target=account.username,
                    result="wrong_password",
                    source=source,
                )
        if not right:
            raise InvalidInput("当前密码不正确", code="wrong_password")
        async with self._db.begin() as conn:
            if current == new:
                raise InvalidInput("新密码不能与当前密码相同", code="weak_password")
            check_password_rule(new, username=account.username)
            await conn.execute(
                sa.update(s.accounts)
                .where(s.accounts.c.id == account.id)
                .values(
                    password_hash=await asyncio.to_thread(hash_password, new),
                    password_changed_at=now,
                )
            )
            await audit(
                conn,
                at=now,
                actor=account.username,
                actor_id=account.id,
                action="account.password_change",
                target=account.username,
                result="ok",
                source=source,
            )

    async def get(self, username: str) -> Account:
        async with self._db.connect() as conn:
            account = await store.account_by_username(conn, username)
        if account is None:
            raise NotFound(f"没有账号 {username}", code="account_not_found")
        return account

    async def list(self) -> list[Account]:
        async with self._db.connect() as conn:
            return await store.list_accounts(conn)
