"""The ``tongban`` command line (CONTRACT.md): demo, serve, purge, user, calendar."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from tongban.settings import Settings, SettingsError, load_settings

log = logging.getLogger("tongban")


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


async def _with_db(settings: Settings, body: Callable[[Any], Awaitable[int]]) -> int:
    from storage.database import Database
    from storage.db import create_engine, migrate

    db = Database(create_engine(settings.database_url))
    try:
        await migrate(db.engine)
        return await body(db)
    finally:
        await db.close()


def cmd_demo(settings: Settings, _args: argparse.Namespace) -> int:
    from directory.demo import DEMO_PASSWORD, load_demo
    from tongban.clock import SystemClock
    from tongban.masking import mask_phone

    async def body(db: Any) -> int:
        async with db.begin() as conn:
            accounts = await load_demo(conn, SystemClock().now())
        print(f"演示数据已就绪 (demo data ready) in {settings.database_url}")
        print(f"every demo account has the password {DEMO_PASSWORD}")
        for a in accounts:
            print(f"  {a.username:<10} {a.role:<10} {mask_phone(a.mobile)}  {a.who}")
        return 0

    return asyncio.run(_with_db(settings, body))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from web.app import create_app
    from web.http import AccessLogger

    ssl_context = server_ssl_context(settings)
    scheme = "https" if ssl_context else "http"
    log.info("serving on %s://%s:%s", scheme, args.host, args.port)
    import uvloop

    web.run_app(
        create_app(settings),
        loop=uvloop.new_event_loop(),
        host=args.host,
        port=args.port,
        ssl_context=ssl_context,
        access_log_class=AccessLogger,
        print=None,
    )
    return 0


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when a certificate is configured (browsers open the camera only on a secure
    origin); plain HTTP for 127.0.0.1 and behind a TLS-terminating proxy."""
    if not (settings.tls_cert and settings.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as err:
        raise SettingsError(f"TONGBAN_TLS_CERT/TONGBAN_TLS_KEY: cannot load: {err}") from err
    return context


def cmd_purge(settings: Settings, _args: argparse.Namespace) -> int:
    from recorder.purge import purge_now

    async def body(db: Any) -> int:
        purged = await purge_now(settings, db)
        print(f"purged {purged} expired recording(s)")
        return 0

    return asyncio.run(_with_db(settings, body))


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("新密码 (new password): ")
    if getpass.getpass("再输入一次 (again): ") != first:
        raise SystemExit("两次输入的密码不一致 (the passwords differ)")
    return first


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    from directory.accounts import AccountService
    from tongban.clock import SystemClock
    from web.sessions import SessionPolicy, SessionService

    async def body(db: Any) -> int:
        clock = SystemClock()
        sessions = SessionService(db, clock, SessionPolicy())
        accounts = AccountService(db, clock, sessions.revoke_account)
        if args.user_command == "add":
            account = await accounts.create(
                actor=None,
                source="cli",
                username=args.username,
                display_name=args.name or args.username,
                role=args.role,
                agency_region=args.agency,
                password=_read_password(args),
                mobile=args.mobile or "",
                department=args.department or "",
                window_codes=args.window or [],
            )
            print(f"created {account.username} ({account.role})")
        elif args.user_command == "disable":
            await accounts.set_disabled(
                actor=None, source="cli", username=args.username, disabled=not args.enable
            )
            print(f"{'enabled' if args.enable else 'disabled'} {args.username}")
        else:
            await accounts.reset_password(
                actor=None, source="cli", username=args.username, password=_read_password(args)
            )
            print(f"password reset for {args.username}")
        return 0

    return asyncio.run(_with_db(settings, body))


def cmd_calendar(settings: Settings, args: argparse.Namespace) -> int:
    """Load a year's schedule: a JSON object {"2027-01-01": {"workday": false, "name": "元旦"}}."""
    from directory.store import load_calendar_days
    from storage.database import audit
    from tongban.clock import SystemClock

    raw = json.loads(Path(args.file).read_text(encoding="utf-8"))
    days = {
        date.fromisoformat(day): (bool(entry["workday"]), str(entry.get("name", "")))
        for day, entry in raw.items()
    }

    async def body(db: Any) -> int:
        async with db.begin() as conn:
            await load_calendar_days(conn, days)
            await audit(
                conn,
                at=SystemClock().now(),
                actor="cli",
                action="calendar.load",
                result="ok",
                detail={"days": len(days)},
            )
        print(f"loaded {len(days)} day(s)")
        return 0

    return asyncio.run(_with_db(settings, body))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongban", description="通办视频协助 server")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="create or refresh the demo data set")
    serve = sub.add_parser("serve", help="run the server (migrates the database first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    sub.add_parser("purge", help="apply the retention rule now")
    user = sub.add_parser("user", help="account management for the provincial admin")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True, choices=["staff", "expert", "supervisor", "auditor", "admin"]
    )
    add.add_argument("--agency", required=True, help="region code of the account's agency")
    add.add_argument("--name")
    add.add_argument("--mobile")
    add.add_argument("--department")
    add.add_argument("--window", action="append", help="window code (repeatable)")
    add.add_argument("--password-stdin", action="store_true")
    disable = user_sub.add_parser("disable")
    disable.add_argument("username")
    disable.add_argument("--enable", action="store_true", help="enable again instead")
    passwd = user_sub.add_parser("passwd")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    cal = sub.add_parser("calendar", help="working-day calendar")
    cal_sub = cal.add_subparsers(dest="calendar_command", required=True)
    load = cal_sub.add_parser("load", help="load a year's holidays and adjusted working days")
    load.add_argument("file")
    return parser


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "purge": cmd_purge,
    "user": cmd_user,
    "calendar": cmd_calendar,
}


def main(argv: Sequence[str] | None = None) -> int:
    from tongban.errors import TongbanError

    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"tongban: configuration error: {err}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](settings, args)
    except TongbanError as err:
        print(f"tongban: {err.message} ({err.code})", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
