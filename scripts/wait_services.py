"""Wait until PostgreSQL or Redis answers (used by scripts/test); exit 1 on time-out."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time


async def postgres() -> None:
    import asyncpg

    url = os.environ.get("TONGBAN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=2)
    await conn.close()


async def redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(os.environ.get("TONGBAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        await client.ping()
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("service", choices=["postgres", "redis"])
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    probe = {"postgres": postgres, "redis": redis}[args.service]
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            asyncio.run(probe())
            return 0
        except Exception as err:
            if time.monotonic() >= deadline:
                print(f"{args.service}: {err}", file=sys.stderr)
                return 1
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
