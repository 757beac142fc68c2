"""R7: delete recordings whose retention has run out, never one under legal hold.

The row is kept (state ``deleted``, ``deleted_at``) so that case pages and audits still show
that a recording existed and when it went; only the archive is removed. Each recording is
claimed by a conditional UPDATE (still ``ready``/``failed``, still expired, still not held) in
its own transaction, the blob is deleted inside that transaction, and the audit record commits
with it. So several nodes (or ``tongban purge`` beside a running server) can purge at once:
exactly one claims a row; a legal hold set at the same moment either lands first (the claim
then matches nothing) or waits for the claim and finds the row deleted. If deleting the blob
fails the transaction rolls back and the next sweep tries again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from recorder.retention import is_purgeable
from storage import schema as s
from storage.blobs import BlobStore, open_blob_store
from storage.database import Database, audit
from tongban.settings import Settings

log = logging.getLogger(__name__)

PURGEABLE_STATES = ("ready", "failed")
BATCH = 200


def blob_store_for(settings: Settings) -> BlobStore:
    """The recordings store named by the settings (the same one the recorder writes to)."""
    return open_blob_store(
        settings.recordings_url,
        s3_endpoint=settings.s3_endpoint,
        s3_access_key=settings.s3_access_key,
        s3_secret_key=settings.s3_secret_key.reveal() if settings.s3_secret_key else None,
        s3_region=settings.s3_region,
    )


def _expired(now: datetime) -> sa.ColumnElement[bool]:
    r = s.recordings.c
    return sa.and_(
        r.state.in_(PURGEABLE_STATES),
        r.expires_at <= now,
        r.legal_hold.is_(sa.false()),
    )


async def purge_now(
    settings: Settings,
    db: Database,
    *,
    now: datetime | None = None,
    blobs: BlobStore | None = None,
) -> int:
    """Purge every recording expired at ``now``; returns how many this call purged."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    own = blobs is None
    store = blobs if blobs is not None else blob_store_for(settings)
    purged = 0
    last_id = 0
    try:
        while True:
            async with db.connect() as conn:
                ids = list(
                    await conn.scalars(
                        sa.select(s.recordings.c.id)
                        .where(_expired(now), s.recordings.c.id > last_id)
                        .order_by(s.recordings.c.id)
                        .limit(BATCH)
                    )
                )
            if not ids:
                break
            last_id = ids[-1]
            for recording_id in ids:
                try:
                    purged += await _purge_one(db, store, recording_id, now)
                except Exception:  # one bad blob must not stop the others; retried next sweep
                    log.exception("could not purge recording %s; will retry", recording_id)
    finally:
        if own:
            await store.close()
    if purged:
        log.info("purged %d expired recording(s)", purged)
    return purged


async def _purge_one(db: Database, blobs: BlobStore, recording_id: int, now: datetime) -> int:
    r = s.recordings.c
    async with db.begin() as conn:
        row = (
            await conn.execute(
                sa.update(s.recordings)
                .where(r.id == recording_id, _expired(now))
                .values(state="deleted", deleted_at=now)
                .returning(r.call_id, r.case_id, r.blob_key, r.expires_at, r.legal_hold)
            )
        ).first()
        if row is None:
            return 0  # another node took it, or a hold or a new state came first
        if not is_purgeable(row.expires_at, row.legal_hold, now):  # the SQL said so; belt, braces
            raise RuntimeError(f"recording {recording_id} claimed but not purgeable")
        await audit(
            conn,
            at=now,
            actor="system",
            action="recording.purge",
            result="ok",
            target=f"recording:{recording_id}",
            detail={
                "call_id": row.call_id,
                "case_id": row.case_id,
                "blob_key": row.blob_key,
                "expires_at": row.expires_at.isoformat(),
            },
        )
        if row.blob_key:
            await blobs.delete(row.blob_key)  # a missing blob is fine: purges are retried
    return 1
