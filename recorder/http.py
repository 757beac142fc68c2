"""Recordings over HTTP (R7, R11): search, play in the page (the whole archive, or one
party's view of it: :mod:`recorder.views`), download, legal hold; and the daily retention
sweep of the server.

Every play and download is audited (who, which recording, which view, when, from where). A
player fetches a recording as many Range requests; those are audited once per user,
recording, action and view within ``AUDIT_RANGES_EVERY`` (looked up in the audit log itself,
so it holds across nodes and restarts), while a download without Range is audited every
time. Refusals
(``forbidden``), requests for a purged recording (``deleted``) and failed integrity checks
(``corrupt``) are audited every time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field

from recorder import catalog
from recorder.purge import blob_store_for, purge_now
from recorder.retention import SHANGHAI
from recorder.service import RecordingService
from recorder.sweeper import RetentionSweeper
from recorder.verify import HashVerifier
from recorder.views import ArchiveMismatch, View, ViewCache, ViewFailed, find_view, plan_views
from storage import schema as s
from storage.blobs import BlobStore, LocalBlobStore, RangeNotSatisfiable
from storage.database import audit
from tongban.errors import Forbidden, InvalidInput, InvalidState, NotFound, TongbanError
from tongban.validation import Payload
from web.http import current_session, error_response, int_param, ok, read_body, source_of
from web.state import SERVICES, Services

log = logging.getLogger(__name__)

AUDIT_RANGES_EVERY = timedelta(minutes=5)
# Containers a browser plays as WebM; anything else (H.264) is served as Matroska.
WEBM_CODECS = frozenset({"VP8", "VP9", "AV1", "OPUS", "VORBIS"})
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RecordingDeleted(TongbanError):
    code = "recording_deleted"
    status = 410


class RecordingCorrupt(TongbanError):
    """The stored archive no longer matches the SHA-256 taken when it was recorded.

    409: retrying will not help; an operator must restore the archive from a backup.
    """

    code = "recording_corrupt"
    status = 409


class HoldBody(Payload):
    hold: bool
    reason: str = Field(min_length=1, max_length=500)


@dataclass
class RecordingsHttp:
    blobs: BlobStore
    verifier: HashVerifier
    sweeper: RetentionSweeper
    views: ViewCache
    view_files: LocalBlobStore  # the same folder, read like a blob store


RECORDINGS_HTTP = web.AppKey("recordings_http", RecordingsHttp)


# --- pure helpers ---------------------------------------------------------------------------


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range, ``None`` without one.

    Raises RangeNotSatisfiable for a range outside the blob, an empty suffix, or a form we
    do not serve (several ranges, other units): a player never asks for those.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match[1] or match[2]):
        raise RangeNotSatisfiable(f"unsupported Range {header[:60]!r}", size=size)
    first, last = match[1], match[2]
    if not first:  # bytes=-N: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable("empty suffix range", size=size)
        return max(0, size - count), size
    start = int(first)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(f"range {header[:60]!r} outside {size} bytes", size=size)
    return start, min(size, int(last) + 1) if last else size


def content_type(codecs: str | None) -> str:
    names = {c.strip().upper() for c in (codecs or "").split(",") if c.strip()}
    return "video/webm" if names and names <= WEBM_CODECS else "video/x-matroska"


def _filename(row: Any, view: View | None = None) -> str:
    started = row.started_at.astimezone(SHANGHAI)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", row.case_no)
    stem = f"tongban-{safe}-{started:%Y%m%d-%H%M%S}-{row.id}"
    if view is None:
        return f"{stem}.mkv"
    return f"{stem}-{re.sub(r'[^A-Za-z0-9._-]', '_', view.id)}{view.suffix}"


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} 须为 YYYY-MM-DD 日期", code="invalid_date") from None


# --- handlers -------------------------------------------------------------------------------


async def list_recordings(request: web.Request) -> web.Response:
    session = await current_session(request)
    account = session.account
    if account.role not in catalog.READER_ROLES:
        raise Forbidden("只有审计员、监督员和管理员可以调阅录像", code="forbidden")
    services = request.app[SERVICES]
    day_from, day_to = _day(request, "from"), _day(request, "to")
    if day_from and day_to and day_from > day_to:
        raise InvalidInput("开始日期晚于结束日期", code="invalid_date")
    try:
        limit = int(request.query.get("limit", catalog.MAX_ROWS))
    except ValueError:
        raise InvalidInput("limit 必须是整数", code="invalid_input") from None
    filters = catalog.Filters(
        case_no=request.query.get("case_no", "").strip()[:40],
        day_from=day_from,
        day_to=day_to,
        window=request.query.get("window", "").strip()[:40],
        staff=request.query.get("staff", "").strip()[:60],
        limit=max(1, min(limit, catalog.MAX_ROWS)),
    )
    scope = catalog.scope_of(account, await services.directory.snapshot())
    async with services.db.connect() as conn:
        rows, more = await catalog.search(conn, scope, filters)
    return ok({"recordings": rows, "truncated": more})


async def _audit_access(
    services: Services,
    request: web.Request,
    *,
    account_id: int,
    username: str,
    action: str,
    row: Any,
    result: str,
    detail: dict[str, Any] | None = None,
    throttle: bool = False,
    view: str | None = None,
) -> bool:
    """Append the audit record; with ``throttle`` skip it when the same user already has an
    ``ok`` record of this action on this recording and view (``None``: the whole archive)
    within ``AUDIT_RANGES_EVERY``."""
    now = services.clock.now()
    target = f"recording:{row.id}"
    a = s.audit_log.c
    async with services.db.begin() as conn:
        if throttle:
            recent = await conn.scalar(
                sa.select(a.id)
                .where(
                    a.action == action,
                    a.actor_id == account_id,
                    a.target == target,
                    a.result == "ok",
                    a.at > now - AUDIT_RANGES_EVERY,
                    sa.func.coalesce(a.detail["view"].as_string(), "") == (view or ""),
                )
                .limit(1)
            )
            if recent is not None:
                return False
        await audit(
            conn,
            at=now,
            actor=username,
            actor_id=account_id,
            action=action,
            result=result,
            target=target,
            source=source_of(request),
            detail={
                "call_id": row.call_id,
                "case_no": row.case_no,
                **({"view": view} if view is not None else {}),
                **(detail or {}),
            },
        )
    return True


Recorder = Any  # async (result, throttle=False, **detail) -> bool: one audit record


async def _readable(request: web.Request, action: str, view: str | None) -> tuple[Any, Recorder]:
    """The recording the request names, once the reader may have it: jurisdiction (403,
    audited), not purged (410, audited), ready (409); and how to audit this access."""
    services = request.app[SERVICES]
    account = (await current_session(request)).account
    recording_id = int_param(request, "recording_id")
    async with services.db.connect() as conn:
        row = await catalog.load(conn, recording_id)
    if row is None:
        raise NotFound("没有这个录像", code="recording_not_found")

    async def record(result: str, throttle: bool = False, **detail: Any) -> bool:
        return await _audit_access(
            services,
            request,
            account_id=account.id,
            username=account.username,
            action=action,
            row=row,
            result=result,
            detail=detail,
            throttle=throttle,
            view=view,
        )

    scope = catalog.scope_of(account, await services.directory.snapshot())
    if not catalog.may_read(account, scope, (row.caller_agency_id, row.home_agency_id)):
        await record("forbidden")
        raise Forbidden("该录像不在您的辖区内，无权调阅", code="forbidden")
    if row.state == "deleted":
        await record("deleted")
        raise RecordingDeleted("录像已按保存期限删除", deleted_at=str(row.deleted_at))
    if row.state != "ready" or not row.blob_key or not row.sha256:
        raise InvalidState(f"录像尚不可调阅（状态 {row.state}）", code="recording_not_ready")
    return row, record


async def _stored_size(state: RecordingsHttp, row: Any, record: Recorder) -> int:
    """The archive's size in the store; a missing or resized archive is corrupt."""
    try:
        size = await state.blobs.size(row.blob_key)
    except NotFound:
        size = -1
    if size != row.size_bytes:
        await _corrupt(row, record, f"stored size {size}, recorded {row.size_bytes}")
    return size


def _if_range(request: web.Request, etag: str) -> str | None:
    header = request.headers.get("Range")
    if header is not None and request.headers.get("If-Range", etag) != etag:
        return None  # the client holds another version: send the whole file
    return header


def _unsatisfiable(err: RangeNotSatisfiable, size: int) -> web.Response:
    refusal = error_response(416, err.code, "请求的字节范围无效", size=size)
    refusal.headers["Content-Range"] = f"bytes */{size}"
    refusal.headers["Accept-Ranges"] = "bytes"
    return refusal


def _media_headers(content_type: str, etag: str, disposition: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Disposition": disposition,  # ASCII by construction
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }


async def download(request: web.Request) -> web.StreamResponse:
    state = request.app[RECORDINGS_HTTP]
    inline = request.query.get("inline", "") in ("1", "true")
    action = "recording.play" if inline else "recording.download"
    row, record = await _readable(request, action, None)

    etag = f'"{row.sha256}"'
    header = _if_range(request, etag)
    size = await _stored_size(state, row, record)
    try:
        span = parse_range(header, size)
    except RangeNotSatisfiable as err:
        return _unsatisfiable(err, size)

    disposition = "inline" if inline else "attachment"
    headers = _media_headers(
        content_type(row.codecs), etag, f'{disposition}; filename="{_filename(row)}"'
    )
    start, stop = span if span is not None else (0, size)
    response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    if request.method == "HEAD":
        await response.prepare(request)
        return response

    # A download is checked every time; a player's ranges share a recent success.
    if not await state.verifier.check(row.blob_key, row.sha256, size, fresh=span is None):
        state.verifier.forget(row.blob_key)
        await _corrupt(row, record, "SHA-256 differs from the recorded one")
    await record(
        "ok",
        range=header if span is not None else None,
        inline=inline,
        bytes=stop - start,
        throttle=span is not None,
    )
    await _stream(request, response, state.blobs.open_range(row.blob_key, start, stop))
    return response


async def play_view(request: web.Request) -> web.StreamResponse:
    """One party's view of the recording (one video track and that party's audio), made
    from the verified archive without re-encoding; Range requests; audited as a play."""
    state = request.app[RECORDINGS_HTTP]
    wanted = request.query.get("track", "").strip()[:120]
    row, record = await _readable(request, "recording.play", wanted)
    views = plan_views(row.tracks)
    if not wanted:
        raise InvalidInput("请指定要播放的一方（track）", code="view_required", views=_ids(views))
    view = find_view(views, wanted)
    if view is None:
        raise NotFound("该录像中没有这一路画面", code="view_not_found", views=_ids(views))
    header = request.headers.get("Range")
    size = await _stored_size(state, row, record)

    served = await state.views.lookup(row.sha256, view)
    if served is None:
        # first play of this archive on this node: copy, check the SHA-256, derive every view
        try:
            await state.views.ensure(state.blobs, row.blob_key, row.sha256, views)
        except ArchiveMismatch:
            state.verifier.forget(row.blob_key)
            await _corrupt(row, record, "SHA-256 differs from the recorded one")
        except NotFound:
            await _corrupt(row, record, "the archive vanished from the store")
        except ViewFailed as err:
            log.error("views of recording %s could not be made: %s", row.id, err)
            raise ViewFailed("无法生成该方的播放画面，请下载完整录像查看") from None
        state.verifier.remember(row.blob_key, row.sha256, size)
        served = await state.views.lookup(row.sha256, view)
        if served is None:  # evicted at once: the cache is far too small for this archive
            raise ViewFailed("无法生成该方的播放画面，请下载完整录像查看")
    elif not await state.verifier.check(row.blob_key, row.sha256, size, fresh=header is None):
        # a view is served only while the archive it came from is intact
        state.verifier.forget(row.blob_key)
        await _corrupt(row, record, "SHA-256 differs from the recorded one")

    etag = f'"{row.sha256[:16]}-{served.key.rsplit("/", 1)[1]}-{served.size}-{served.mtime_ns}"'
    header = _if_range(request, etag)
    try:
        span = parse_range(header, served.size)
    except RangeNotSatisfiable as err:
        return _unsatisfiable(err, served.size)
    headers = _media_headers(view.content_type, etag, f'inline; filename="{_filename(row, view)}"')
    start, stop = span if span is not None else (0, served.size)
    response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{served.size}"
    response.content_length = stop - start
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    await record(
        "ok", range=header if span is not None else None, bytes=stop - start, throttle=True
    )
    await _stream(request, response, state.view_files.open_range(served.key, start, stop))
    return response


def _ids(views: list[View]) -> list[str]:
    return [v.id for v in views]


async def _corrupt(row: Any, record: Any, why: str) -> NoReturn:
    log.error("recording %s (%s) is corrupt: %s; not served", row.id, row.blob_key, why)
    await record("corrupt", why=why)
    raise RecordingCorrupt("录像文件校验失败（与录制时的校验值不一致），请联系管理员")


async def _stream(
    request: web.Request, response: web.StreamResponse, chunks: AsyncIterator[bytes]
) -> None:
    """Chunk by chunk from the store: never the whole archive in memory. The first chunk is
    read before the headers go, so a store error still becomes a JSON error."""
    iterator = aiter(chunks)
    try:
        first = await anext(iterator, b"")
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in iterator:
            await response.write(chunk)
        await response.write_eof()
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def set_hold(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    account = (await current_session(request)).account
    recording_id = int_param(request, "recording_id")
    body = await read_body(request, HoldBody)
    action = "recording.hold" if body.hold else "recording.release"
    async with services.db.connect() as conn:
        row = await catalog.load(conn, recording_id)
    if row is None:
        raise NotFound("没有这个录像", code="recording_not_found")
    scope = catalog.scope_of(account, await services.directory.snapshot())
    allowed = account.role in catalog.HOLD_ROLES and catalog.may_read(
        account, scope, (row.caller_agency_id, row.home_agency_id)
    )
    now = services.clock.now()
    async with services.db.begin() as conn:
        if allowed:
            changed = await conn.execute(
                sa.update(s.recordings)
                .where(s.recordings.c.id == recording_id, s.recordings.c.state != "deleted")
                .values(legal_hold=body.hold, legal_hold_reason=body.reason if body.hold else None)
            )
            result = "ok" if changed.rowcount == 1 else "deleted"
        else:
            result = "forbidden"
        await audit(
            conn,
            at=now,
            actor=account.username,
            actor_id=account.id,
            action=action,
            result=result,
            target=f"recording:{recording_id}",
            source=source_of(request),
            detail={"call_id": row.call_id, "case_no": row.case_no, "reason": body.reason},
        )
    if result == "forbidden":
        raise Forbidden("只有有辖区权限的审计员或监督员可以设置法律保全", code="forbidden")
    if result == "deleted":
        raise RecordingDeleted("录像已按保存期限删除，无法保全")
    async with services.db.connect() as conn:
        fresh = await catalog.load(conn, recording_id)
        people = await catalog.participants(conn, [fresh.call_id])
    return ok(catalog.present(fresh, people.get(fresh.call_id, [])))


# --- the part -------------------------------------------------------------------------------


def setup(app: web.Application) -> None:
    """Routes and the retention sweep; after the media part so its blob store is shared."""
    app.cleanup_ctx.append(_recordings_ctx)
    app.router.add_get("/api/recordings", list_recordings)
    app.router.add_get("/api/recordings/{recording_id}/download", download)
    app.router.add_get("/api/recordings/{recording_id}/play", play_view)
    app.router.add_post("/api/recordings/{recording_id}/hold", set_hold)


async def _recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    recorder: RecordingService | None = services.extra.get("recordings")
    own: BlobStore | None = None
    if recorder is not None:
        blobs = recorder.blobs  # the media part's store: one client, one pool
    else:
        blobs = own = blob_store_for(settings)

    views = ViewCache(settings.data_dir / "recording-views")

    async def still_ready(shas: list[str]) -> list[str]:
        r = s.recordings.c
        async with services.db.connect() as conn:
            found = await conn.scalars(
                sa.select(r.sha256).where(r.state == "ready", r.sha256.in_(shas)).distinct()
            )
            return [str(sha) for sha in found]

    async def sweep() -> int:
        purged = await purge_now(settings, services.db, now=services.clock.now(), blobs=blobs)
        await views.retain(still_ready)  # no view outlives its archive's retention
        return purged

    state = RecordingsHttp(
        blobs=blobs,
        verifier=HashVerifier(blobs.sha256),
        sweeper=RetentionSweeper(sweep),
        views=views,
        view_files=LocalBlobStore(views.root),
    )
    app[RECORDINGS_HTTP] = state
    state.sweeper.start()
    try:
        yield
    finally:
        await state.sweeper.close()
        await state.verifier.close()
        await state.views.close()
        if own is not None:
            await own.close()
