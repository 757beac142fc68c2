"""A call's recording from first packet to verified archive in blob storage.

At answer: a recordings row (state ``recording``, expiry = start + retention) and the path of
a raw dump that the media host appends to (``media/host.py``: in this process or in a media
worker process, wherever the call's packets pass). At hang-up, off the event loop: remux into
one Matroska archive, verify, upload to the blob store, check the stored SHA-256, record
duration, size and codecs (state ``ready``), then remove the local files. A dump left by a
crash is finished the same way when the server starts again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from media.host import DumpSpec
from recorder.dump import DumpReader
from recorder.remux import EmptyRecording, RemuxError, archive_path_for, finalize
from recorder.retention import expires_at
from storage import schema as s
from storage.blobs import BlobStore
from storage.database import Database
from tongban.clock import Clock

log = logging.getLogger(__name__)

DUMP_SUFFIX = ".tbdump"
# told when a recording changes state: call id, state ("ready" | "failed")
RecordingListener = Callable[[str, str], Awaitable[None]]


def blob_key(call_id: str, started_at: datetime) -> str:
    return f"calls/{started_at:%Y/%m}/{call_id}.mkv"


class RecordingService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        blobs: BlobStore,
        work_dir: Path,
        *,
        retention_months: int,
    ) -> None:
        self._db = db
        self._clock = clock
        self.blobs = blobs
        self.work_dir = work_dir
        self._months = retention_months
        self._open: set[str] = set()  # calls whose dump the media host is writing
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listeners: list[RecordingListener] = []
        work_dir.mkdir(parents=True, exist_ok=True)

    def dump_path(self, call_id: str) -> Path:
        return self.work_dir / f"{call_id}{DUMP_SUFFIX}"

    async def start(self, call_id: str, case_id: int, started_at: datetime) -> DumpSpec:
        """The metadata row and where the dump goes; the row exists before the first packet."""
        async with self._db.begin() as conn:
            exists = await conn.scalar(
                sa.select(s.recordings.c.id).where(s.recordings.c.call_id == call_id)
            )
            if exists is None:
                await conn.execute(
                    sa.insert(s.recordings).values(
                        call_id=call_id,
                        case_id=case_id,
                        state="recording",
                        blob_key=blob_key(call_id, started_at),
                        started_at=started_at,
                        expires_at=expires_at(started_at, self._months),
                    )
                )
        self._open.add(call_id)
        return DumpSpec(str(self.dump_path(call_id)), call_id, started_at.isoformat())

    def is_recording(self, call_id: str) -> bool:
        return call_id in self._open

    def finish_soon(self, call_id: str) -> None:
        """The media host has closed the dump: remux and upload in the background (a few
        seconds)."""
        if call_id not in self._open:
            return
        self._open.discard(call_id)
        dump = self.dump_path(call_id)
        task = asyncio.create_task(self._finish(call_id, dump), name=f"finish-{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for archives being finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _finish(self, call_id: str, dump: Path) -> str:
        archive = archive_path_for(dump)
        try:
            info = await asyncio.to_thread(finalize, dump, archive)
        except EmptyRecording:
            await self._set(call_id, state="failed", error="通话中没有收到媒体数据")
            await asyncio.to_thread(dump.unlink, missing_ok=True)
            return "failed"
        except (RemuxError, OSError) as err:
            log.exception("recording of call %s could not be finished", call_id)
            await self._set(call_id, state="failed", error=str(err)[:500])
            return "failed"
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(s.recordings).where(s.recordings.c.call_id == call_id))
            ).first()
        if row is None:  # a dump without a row (should not happen): keep the file for an admin
            log.error("no recording row for call %s; archive kept at %s", call_id, archive.name)
            return "failed"
        stored = await self.blobs.put_file(row.blob_key, archive)
        if stored.sha256 != info.sha256:
            await self._set(call_id, state="failed", error="上传后的校验值与录像不一致")
            return "failed"
        await self._set(
            call_id,
            state="ready",
            ended_at=self._clock.now(),
            duration_s=round(info.duration_seconds, 3),
            size_bytes=info.size_bytes,
            codecs=",".join(sorted(set(info.codecs))),
            sha256=info.sha256,
            tracks=[_track(t) for t in info.tracks],
            error=None,
        )
        await asyncio.to_thread(archive.unlink, missing_ok=True)
        return "ready"

    async def _set(self, call_id: str, **values: Any) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                sa.update(s.recordings).where(s.recordings.c.call_id == call_id).values(**values)
            )
        state = values.get("state")
        if state:
            for listener in self.listeners:
                try:
                    await listener(call_id, str(state))
                except Exception:
                    log.exception("recording listener failed")

    async def recover(self) -> int:
        """Finish every dump a crash left behind (before any call starts)."""
        done = 0
        for dump in sorted(self.work_dir.glob(f"*{DUMP_SUFFIX}")):
            call_id = dump.name[: -len(DUMP_SUFFIX)]
            if call_id in self._open:
                continue
            if not _has_header(dump):
                dump.unlink(missing_ok=True)
                continue
            log.info("finishing the recording of call %s left by a crash", call_id)
            await self._finish(call_id, dump)
            done += 1
        for part in self.work_dir.glob("*.part"):
            part.unlink(missing_ok=True)
        return done

    async def close(self) -> None:
        """Wait for archives being finished; open dumps stay for recover() at the next start."""
        self._open.clear()
        await self.drain()


def _has_header(path: Path) -> bool:
    try:
        if os.path.getsize(path) == 0:
            return False
        next(iter(DumpReader(path)))
    except (StopIteration, ValueError, OSError):
        return False
    return True


def _track(track: Any) -> dict[str, Any]:
    doc = asdict(track) if hasattr(track, "__dataclass_fields__") else dict(track)
    return {
        k: v for k, v in doc.items() if isinstance(v, str | int | float | bool | list) or v is None
    }
