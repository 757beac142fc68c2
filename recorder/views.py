"""Per-party views of a call's archive, for in-page playback (R7).

A call's archive holds every track of every participant (``recorder/remux.py``), but a browser
plays only the first video and the first audio track of a Matroska file, so an auditor would
only ever see one party. A *view* is a small WebM (Matroska for H.264) with ONE video track of
one participant (camera or document camera) and that participant's own audio, muxed from the
archive's packets without decoding or encoding anything.

Why the party's own audio and not both sides': a browser plays one audio track only, and two
voices in one track would need decoding, mixing and encoding again, which a record must not go
through. The party's own voice is also the one that is in sync with the face on screen; the
other side is heard on the other party's view, at the same moment, because every view keeps
the archive's timeline (0 = the call's first packet), so the page can switch at the same time.
A participant who sent audio but no video gets an audio-only view.

Views are derived on first play, all views of an archive in one pass, off the event loop, into
a cache folder on the node (never the blob store, never the repository): one folder per archive
named by its SHA-256, renamed into place only when complete. The archive is copied from the
blob store while being hashed and the views are made from exactly the bytes that matched the
SHA-256 recorded with the call; a tampered archive raises :class:`ArchiveMismatch` and nothing
is derived. The cache is bounded by size and idle time (least recently used folders go first)
and :meth:`ViewCache.retain` drops the views of archives that were purged.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from storage.blobs import BlobStore
from tongban.errors import TongbanError

log = logging.getLogger(__name__)

VIDEO_SOURCES = ("camera", "document")
WEBM_CODECS = frozenset({"VP8", "VP9", "AV1", "OPUS", "VORBIS"})
DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB of views per node
DEFAULT_MAX_IDLE_S = 24 * 3600.0  # a view unwatched for a day is derived again if needed
IN_USE_S = 120.0  # a folder watched this recently is not evicted (its files are being served)
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_PART = ".part-"


class ArchiveMismatch(TongbanError):
    """The stored archive does not hash to the SHA-256 recorded with the call."""

    code = "recording_corrupt"
    status = 409


class ViewFailed(TongbanError):
    """The views of a verified archive could not be made (a bug or a damaged file)."""

    code = "recording_view_failed"
    status = 500


@dataclass(frozen=True, slots=True)
class View:
    """One playable view: ``id`` is what a client asks for (the video track's title, e.g.
    ``"fq.h1 camera"``; ``"zz.a1 audio"`` for an audio-only view; ``" #2"`` appended when a
    participant sent the same source twice, e.g. after re-joining)."""

    id: str
    participant: str
    source: str  # camera | document | audio
    streams: tuple[int, ...]  # archive stream indexes, video first
    titles: tuple[str, ...]  # the archive's titles of those streams, as recorded
    codecs: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "audio" if self.source == "audio" else "video"

    @property
    def webm(self) -> bool:
        return all(c.upper() in WEBM_CODECS for c in self.codecs)

    @property
    def suffix(self) -> str:
        return ".webm" if self.webm else ".mkv"

    @property
    def content_type(self) -> str:
        return "video/webm" if self.webm else "video/x-matroska"

    @property
    def file_name(self) -> str:
        """The view's file inside its archive's cache folder: safe whatever the username."""
        return hashlib.sha256(self.id.encode()).hexdigest()[:20] + self.suffix

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "participant": self.participant,
            "source": self.source,
            "kind": self.kind,
        }


# --- planning (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Track:
    index: int
    title: str
    participant: str
    label: str
    kind: str
    codec: str
    start: float | None
    end: float | None


def _tracks(tracks: Iterable[Any]) -> list[_Track]:
    """The recording row's track list (``ArchivedTrack`` as JSON), in archive stream order."""
    out: list[_Track] = []
    for position, t in enumerate(tracks):
        if not isinstance(t, Mapping):
            continue
        title = str(t.get("title") or "")
        participant, _, label = title.rpartition(" ")
        participant = str(t.get("participant") or participant)
        label = str(t.get("label") or label)
        kind = str(t.get("kind") or ("audio" if label == "audio" else "video"))
        if not participant or not label:
            continue
        start, duration = t.get("start_seconds"), t.get("duration_seconds")
        span = (
            (float(start), float(start) + float(duration))
            if isinstance(start, int | float) and isinstance(duration, int | float)
            else None
        )
        out.append(
            _Track(
                index=int(t.get("stream_index", position)),
                title=title,
                participant=participant,
                label=label,
                kind=kind,
                codec=str(t.get("codec") or ""),
                start=span[0] if span else None,
                end=span[1] if span else None,
            )
        )
    return out


def _overlap(a: _Track, b: _Track) -> float:
    if a.start is None or a.end is None or b.start is None or b.end is None:
        return 0.0
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))


def plan_views(tracks: Iterable[Any] | None) -> list[View]:
    """The views of a recording from its stored track list: per participant (in the order
    they appear in the archive) one per video track, camera before document, each with the
    participant's audio track that overlaps it most; an audio-only view for a participant
    without video."""
    parsed = _tracks(tracks or [])
    people: list[str] = []
    for t in parsed:
        if t.participant not in people:
            people.append(t.participant)
    views: list[View] = []
    seen: dict[str, int] = {}

    def add(participant: str, source: str, picked: list[_Track]) -> None:
        base = f"{participant} {source}"
        seen[base] = seen.get(base, 0) + 1
        view_id = base if seen[base] == 1 else f"{base} #{seen[base]}"
        views.append(
            View(
                id=view_id,
                participant=participant,
                source=source,
                streams=tuple(t.index for t in picked),
                titles=tuple(t.title for t in picked),
                codecs=tuple(t.codec for t in picked),
            )
        )

    for person in people:
        mine = [t for t in parsed if t.participant == person]
        audio = [t for t in mine if t.kind == "audio"]
        video = [t for t in mine if t.kind == "video"]
        order = {s: n for n, s in enumerate(VIDEO_SOURCES)}
        video.sort(key=lambda t: (order.get(t.label, len(order)), t.index))
        for v in video:
            voice = max(audio, key=lambda a: (_overlap(v, a), -a.index), default=None)
            add(person, v.label, [v] if voice is None else [v, voice])
        if not video:
            for a in audio:
                add(person, "audio", [a])
    return views


def find_view(views: Iterable[View], wanted: str) -> View | None:
    wanted = wanted.strip()
    return next((v for v in views if v.id == wanted), None)


# --- deriving (blocking: run in a thread) --------------------------------------------------


def derive(archive: Path, views: Collection[View], folder: Path) -> dict[str, int]:
    """Write every view of ``archive`` into ``folder`` in one demuxing pass, packets copied
    as they are; then read each view back (tracks, titles, packet counts). Returns the size
    of each view by id. Raises :class:`ViewFailed`."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs: list[tuple[View, Any, dict[int, Any]]] = []
    written: dict[str, list[int]] = {}
    try:
        with av.open(str(archive)) as source:
            streams = list(source.streams)
            for view in views:
                for index, title in zip(view.streams, view.titles, strict=True):
                    if index >= len(streams):
                        raise ViewFailed(f"view {view.id!r}: the archive has no track {index}")
                    recorded = streams[index].metadata.get("title")
                    if recorded is not None and recorded != title:
                        raise ViewFailed(f"view {view.id!r}: track {index} is {recorded!r}")
            for view in views:
                out = av.open(
                    str(folder / view.file_name), "w", format="webm" if view.webm else "matroska"
                )
                out.metadata["title"] = f"{source.metadata.get('title', 'Tongban call')} {view.id}"
                for key in ("TONGBAN_CALL_ID", "TONGBAN_STARTED_AT"):
                    if key in source.metadata:
                        out.metadata[key] = source.metadata[key]
                mapping: dict[int, Any] = {}
                for index in view.streams:
                    template = streams[index]
                    stream = out.add_stream_from_template(template)
                    for key, value in template.metadata.items():
                        stream.metadata[key] = value
                    mapping[index] = stream
                outputs.append((view, out, mapping))
                written[view.id] = [0] * len(view.streams)
            routes: dict[int, list[tuple[str, int, Any]]] = {}
            for view, _, mapping in outputs:
                for position, (index, stream) in enumerate(mapping.items()):
                    routes.setdefault(index, []).append((view.id, position, stream))
            for packet in source.demux():
                if packet.size == 0 or packet.dts is None:
                    continue  # the demuxer's flush packets
                targets = routes.get(packet.stream.index)
                if not targets:
                    continue
                time_base = packet.time_base
                for view_id, position, stream in targets:
                    copy = packet if len(targets) == 1 else av.Packet(bytes(packet))
                    if copy is not packet:
                        copy.pts, copy.dts = packet.pts, packet.dts
                        copy.duration = packet.duration
                        copy.is_keyframe = packet.is_keyframe
                    copy.time_base = time_base
                    copy.stream = stream
                    stream.container.mux(copy)
                    written[view_id][position] += 1
    except av.FFmpegError as err:
        raise ViewFailed(f"deriving the views of {archive.name} failed: {err}") from err
    finally:
        for _, out, _ in outputs:
            try:
                out.close()
            except av.FFmpegError:
                log.exception("closing a view of %s failed", archive.name)
    sizes: dict[str, int] = {}
    for view in views:
        path = folder / view.file_name
        _check(path, view, written[view.id])
        sizes[view.id] = path.stat().st_size
    return sizes


def _check(path: Path, view: View, written: list[int]) -> None:
    try:
        with av.open(str(path)) as container:
            streams = list(container.streams)
            titles = tuple(s.metadata.get("title") for s in streams)
            counts = [0] * len(streams)
            for packet in container.demux():
                if packet.size:
                    counts[packet.stream.index] += 1
    except av.FFmpegError as err:
        raise ViewFailed(f"view {view.id!r} does not read back: {err}") from err
    if len(streams) != len(view.streams):
        raise ViewFailed(f"view {view.id!r} has {len(streams)} tracks, expected {view.streams}")
    if any(t is not None and t != want for t, want in zip(titles, view.titles, strict=True)):
        raise ViewFailed(f"view {view.id!r} has tracks {titles}, expected {view.titles}")
    if counts != written:
        raise ViewFailed(f"view {view.id!r}: {counts} packets read back, {written} written")


# --- the cache ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Served:
    """A view ready to serve: its file (relative to the cache root) and size."""

    key: str  # "<archive sha256>/<file name>"
    path: Path
    size: int
    mtime_ns: int


class ViewCache:
    """Derived views on this node's disk, one folder per archive SHA-256, bounded."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_idle_s: float = DEFAULT_MAX_IDLE_S,
        in_use_s: float = IN_USE_S,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self.max_idle_s = max_idle_s
        self.in_use_s = in_use_s
        self._wall = wall
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._gate = asyncio.Semaphore(2)  # derivations at once on this node
        self.derivations = 0  # how many archives were fetched and derived (tests, metrics)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f"*{_PART}*"):  # a derivation a crash interrupted
            shutil.rmtree(stale, ignore_errors=True)

    def folder(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ViewFailed("the recording has no valid SHA-256")
        return self.root / sha256

    async def lookup(self, sha256: str, view: View) -> Served | None:
        """The cached view, marked as just used; ``None`` when not derived yet."""
        path = self.folder(sha256) / view.file_name

        def run() -> Served | None:
            try:
                stat = path.stat()
            except FileNotFoundError:
                return None
            now = self._wall()
            try:
                os.utime(path.parent, (now, now))  # least recently used goes first
            except FileNotFoundError:
                return None
            return Served(f"{sha256}/{view.file_name}", path, stat.st_size, stat.st_mtime_ns)

        return await asyncio.to_thread(run)

    async def ensure(
        self, blobs: BlobStore, blob_key: str, sha256: str, views: Collection[View]
    ) -> None:
        """Fetch, verify and derive every view of the archive unless already cached.
        Concurrent requests for one archive share one derivation; a client that goes away
        does not cancel it. Raises :class:`ArchiveMismatch` or :class:`ViewFailed`."""
        folder = self.folder(sha256)
        if await asyncio.to_thread(folder.is_dir):
            return
        task = self._inflight.get(sha256)
        if task is None:
            task = asyncio.create_task(
                self._derive(blobs, blob_key, sha256, list(views)), name=f"views-{sha256[:12]}"
            )
            self._inflight[sha256] = task
            task.add_done_callback(functools.partial(self._settled, sha256))
        await asyncio.shield(task)

    def _settled(self, sha256: str, task: asyncio.Task[None]) -> None:
        self._inflight.pop(sha256, None)
        if not task.cancelled():
            task.exception()  # retrieved; the awaiting requests re-raise it

    async def _derive(
        self, blobs: BlobStore, blob_key: str, sha256: str, views: list[View]
    ) -> None:
        async with self._gate:
            folder = self.folder(sha256)
            work = self.root / f"{sha256}{_PART}{uuid.uuid4().hex[:8]}"
            await asyncio.to_thread(work.mkdir, parents=True)
            try:
                archive = work / "archive.mkv"
                digest = await _fetch(blobs, blob_key, archive)
                if digest != sha256:
                    raise ArchiveMismatch(
                        "录像文件校验失败（与录制时的校验值不一致），请联系管理员"
                    )
                self.derivations += 1
                started = time.monotonic()
                await asyncio.to_thread(_derive_into, archive, views, work, folder)
                log.info(
                    "derived %d view(s) of archive %s in %.1f s",
                    len(views),
                    sha256[:12],
                    time.monotonic() - started,
                )
            finally:
                await asyncio.to_thread(shutil.rmtree, work, True)
            await asyncio.to_thread(self._evict, {sha256})

    async def retain(self, still_ready: Callable[[list[str]], Awaitable[Collection[str]]]) -> int:
        """Drop cached folders whose archive may no longer be read (purged at the end of its
        retention, or replaced): ``still_ready(shas)`` returns those of the given SHA-256s
        that still belong to a ready recording. Then evicts by size and idle time. Returns
        how many folders were removed."""
        shas = [sha for sha, _, _ in await asyncio.to_thread(self._groups)]
        kept = set(await still_ready(shas)) if shas else set()
        gone = [sha for sha in shas if sha not in kept]
        for sha in gone:
            await asyncio.to_thread(shutil.rmtree, self.root / sha, True)
        return len(gone) + await asyncio.to_thread(self._evict, set())

    def _groups(self) -> list[tuple[str, float, int]]:
        """(sha256, last used, bytes) of every complete folder, least recently used first."""
        out = []
        for entry in os.scandir(self.root):
            if not entry.is_dir(follow_symlinks=False) or not _SHA256.match(entry.name):
                continue
            size = sum(f.stat().st_size for f in os.scandir(entry.path) if f.is_file())
            out.append((entry.name, entry.stat().st_mtime, size))
        out.sort(key=lambda g: g[1])
        return out

    def _evict(self, keep: set[str]) -> int:
        now = self._wall()
        groups = self._groups()
        total = sum(size for _, _, size in groups)
        removed = 0
        for sha, used, size in groups:
            if sha in keep or now - used < self.in_use_s:
                continue
            if total <= self.max_bytes and now - used < self.max_idle_s:
                continue
            shutil.rmtree(self.root / sha, ignore_errors=True)
            total -= size
            removed += 1
        return removed

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        self._inflight.clear()


def _derive_into(archive: Path, views: list[View], work: Path, folder: Path) -> None:
    out = work / "views"
    derive(archive, views, out)
    try:
        os.rename(out, folder)  # complete or absent, never half
    except OSError:
        if not folder.is_dir():  # another node process won the race: theirs is as good
            raise


async def _fetch(blobs: BlobStore, key: str, dest: Path) -> str:
    """Copy a blob to a local file, hashing exactly the bytes written."""
    digest = hashlib.sha256()

    def write(f: Any, chunk: bytes) -> None:
        digest.update(chunk)
        f.write(chunk)

    f = await asyncio.to_thread(open, dest, "wb")
    try:
        async for chunk in blobs.open_range(key):
            await asyncio.to_thread(write, f, chunk)
    finally:
        await asyncio.to_thread(f.close)
    return digest.hexdigest()
