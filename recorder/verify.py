"""Checking a stored archive against the SHA-256 recorded when it was made, without hashing
a whole recording for every HTTP Range request of an in-page player.

A full download hashes the blob every time before the first byte leaves. A player asks for
dozens of ranges (start, seeks, the cues at the end); the first range hashes the blob once and
a success is remembered in this process for ``ttl`` seconds, keyed by blob key, expected hash
and size, so a replaced or resized blob is hashed again. Concurrent checks of one blob share
one hashing pass. Every request still compares the blob's size (one stat or HEAD).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

DEFAULT_TTL_S = 15 * 60.0
MAX_ENTRIES = 4096

Key = tuple[str, str, int]


class HashVerifier:
    def __init__(
        self,
        hasher: Callable[[str], Awaitable[str]],
        *,
        ttl: float = DEFAULT_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hasher = hasher
        self._ttl = ttl
        self._now = monotonic
        self._verified: dict[Key, float] = {}  # -> when verified
        self._inflight: dict[Key, asyncio.Task[bool]] = {}
        self.hashes = 0  # how many whole-blob hashing passes ran (tests, metrics)

    def cached(self, blob_key: str, expected: str, size: int) -> bool:
        at = self._verified.get((blob_key, expected, size))
        return at is not None and self._now() - at < self._ttl

    async def check(self, blob_key: str, expected: str, size: int, *, fresh: bool) -> bool:
        """True when the blob hashes to ``expected``; ``fresh`` ignores a cached success.

        The hashing runs in its own task: a player that disconnects mid-check does not cancel
        it for the other requests waiting on it, and its success is still remembered.
        """
        key = (blob_key, expected, size)
        if not fresh and self.cached(*key):
            return True
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._hash(key), name=f"verify-{blob_key}")
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._settled, key))
        return await asyncio.shield(task)

    async def _hash(self, key: Key) -> bool:
        self.hashes += 1
        good = await self._hasher(key[0]) == key[1]
        if good:
            self._prune()
            self._verified[key] = self._now()
        else:
            self._verified.pop(key, None)
        return good

    def _settled(self, key: Key, task: asyncio.Task[bool]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here; the requests awaiting it re-raise it

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        self._inflight.clear()

    def remember(self, blob_key: str, expected: str, size: int) -> None:
        """Someone else hashed the blob (e.g. while copying it) and it matched."""
        self._prune()
        self._verified[(blob_key, expected, size)] = self._now()

    def forget(self, blob_key: str) -> None:
        for key in [k for k in self._verified if k[0] == blob_key]:
            del self._verified[key]

    def _prune(self) -> None:
        if len(self._verified) < MAX_ENTRIES:
            return
        now = self._now()
        for key, at in list(self._verified.items()):
            if now - at >= self._ttl:
                del self._verified[key]
        while len(self._verified) >= MAX_ENTRIES:  # oldest first (insertion order)
            del self._verified[next(iter(self._verified))]
