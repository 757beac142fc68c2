"""Dump -> one verified Matroska archive per call, without transcoding.

Synchronous and CPU-bound: callers run it in a thread (``await asyncio.to_thread(finalize,
dump, archive)``). Two passes over the dump: the first learns each track's clock offset
(see :mod:`recorder.frames`) and, for video, the first keyframe's size and H.264 parameter
sets, which Matroska needs in its header; the second rebuilds frames and muxes them.

Always ``.mkv``: WebM cannot carry H.264. The archive is written beside its final name,
re-opened and checked (track count, titles, every packet readable, duration), fsynced and only
then renamed into place, so an archive that exists is a verified one; :func:`finalize` deletes
the dump only after that.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from media.ports import TrackInfo
from recorder import depay
from recorder.dump import DUMP_SUFFIX, DumpPacket, DumpReader, DumpTrack
from recorder.frames import ClockSurvey, Frame, TrackAssembler, TrackStats
from tongban.errors import TongbanError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIX = ".mkv"
_MS = Fraction(1, 1000)
DURATION_TOLERANCE_S = 1.0


class RemuxError(TongbanError):
    """The dump could not be turned into a verified archive; the dump is kept."""

    code = "recording_failed"
    status = 500


class EmptyRecording(RemuxError):
    """The dump holds no playable media (no track ever sent a keyframe or audio)."""

    code = "recording_empty"


@dataclass(frozen=True, slots=True)
class ArchivedTrack:
    stream_index: int
    track_id: str
    participant: str
    label: str
    kind: str
    codec: str
    title: str
    frames: int
    start_seconds: float
    duration_seconds: float
    width: int | None = None
    height: int | None = None
    resolutions: tuple[tuple[int, int], ...] = ()
    lost_packets: int = 0
    dropped_frames: int = 0


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    path: Path
    call_id: str
    started_at: datetime
    duration_seconds: float
    size_bytes: int
    sha256: str
    codecs: tuple[str, ...]
    tracks: tuple[ArchivedTrack, ...]
    missing_tracks: tuple[str, ...] = ()  # declared but without playable media
    dump_torn: bool = False  # the dump ended inside a record (crash)
    dump_clean_end: bool = True  # the writer closed the dump


def archive_path_for(dump_path: str | os.PathLike[str]) -> Path:
    """Where the archive of a dump goes: same folder and stem, ``.mkv``."""
    return Path(dump_path).with_suffix(ARCHIVE_SUFFIX)


def track_title(info: TrackInfo) -> str:
    """What a player shows for the track: who sent it and from which source."""
    return f"{info.participant} {info.label}"


@dataclass(slots=True)
class _Plan:
    info: TrackInfo
    clock: ClockSurvey
    size: tuple[int, int] | None = None
    sps: bytes | None = None
    pps: bytes | None = None
    stream: Any = None
    assembler: TrackAssembler | None = None
    last_ms: int = -1
    first_ms: int | None = None
    end_ms: int = 0
    muxed: int = 0
    stats: TrackStats = field(default_factory=TrackStats)

    @property
    def codec(self) -> str:
        return self.info.codec.upper()

    @property
    def playable(self) -> bool:
        if self.codec == "OPUS":
            return self.clock.first_ns is not None
        if self.codec == "H264":
            return self.size is not None and self.sps is not None and self.pps is not None
        return self.size is not None

    def survey(self, header: depay.RtpHeader, arrival_ns: int) -> None:
        self.clock.add(header, arrival_ns)
        if self.codec == "VP8" and self.size is None:
            parsed = depay.vp8_payload(header.payload)
            if parsed is not None and parsed[0]:
                self.size = depay.vp8_keyframe_size(parsed[1])
        elif self.codec == "H264" and (self.size is None or self.pps is None):
            h = depay.h264_payload(header.payload)
            for nal in h[2] if h is not None else []:
                kind = nal[0] & 0x1F
                if kind == depay.H264_NAL_SPS and self.sps is None:
                    self.size = depay.h264_sps_size(nal)
                    self.sps = nal if self.size is not None else None
                elif kind == depay.H264_NAL_PPS and self.sps is not None and self.pps is None:
                    self.pps = nal


def _survey(dump_path: Path) -> tuple[DumpReader, dict[int, _Plan]]:
    reader = DumpReader(dump_path)
    plans: dict[int, _Plan] = {}
    for record in reader:
        if isinstance(record, DumpPacket):
            plan = plans.get(record.track_index)
            if plan is None:
                continue
            header = depay.parse_rtp(record.data)
            if header is not None and header.payload_type == plan.info.payload_type:
                plan.survey(header, record.arrival_ns)
        elif isinstance(record, DumpTrack):
            info = record.info
            if info.codec.upper() not in ("VP8", "H264", "OPUS"):
                log.warning("track %s: codec %s is not recorded", info.track_id, info.codec)
                continue
            plans[record.index] = _Plan(info, ClockSurvey(info.clock_rate, info.payload_type))
    return reader, plans


def _add_stream(container: Any, plan: _Plan) -> Any:
    """A stream for already-encoded packets, with the header fields Matroska needs.

    PyAV opens an output stream's encoder when it writes the header and the encoder replaces
    ``extradata`` (x264 writes its own SPS, libopus a pre-skip of 312). Opening it ourselves
    first and then setting ``extradata`` keeps the sender's parameters; nothing is encoded.
    """
    codec = plan.codec
    if codec == "VP8":
        assert plan.size is not None
        stream = container.add_mux_stream("vp8", width=plan.size[0], height=plan.size[1])
    elif codec == "H264":
        assert plan.size is not None and plan.sps is not None and plan.pps is not None
        stream = container.add_stream("libx264")
        ctx = stream.codec_context
        ctx.width, ctx.height = plan.size
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = _MS
        ctx.open()
        ctx.extradata = depay.START_CODE + plan.sps + depay.START_CODE + plan.pps
    else:
        stream = container.add_stream("libopus", rate=48000)
        ctx = stream.codec_context
        channels = plan.info.channels or 2
        ctx.layout = "stereo" if channels == 2 else "mono"
        ctx.format = "s16"
        ctx.open()
        # OpusHead (RFC 7845 5.1): version 1, channels, pre-skip 0 (an RTP stream has no
        # encoder delay to trim at its start), input rate 48 kHz, gain 0, mapping family 0.
        ctx.extradata = (
            b"OpusHead"
            + bytes((1, channels))
            + (0).to_bytes(2, "little")
            + (48000).to_bytes(4, "little")
            + bytes(3)
        )
    info = plan.info
    stream.metadata["title"] = track_title(info)
    stream.metadata["TONGBAN_PARTICIPANT"] = info.participant
    stream.metadata["TONGBAN_SOURCE"] = info.label
    stream.metadata["TONGBAN_TRACK_ID"] = info.track_id
    return stream


def _mux(container: Any, plan: _Plan, frame: Frame, t0_ns: int) -> None:
    pts = max(0, (frame.time_ns - t0_ns + 500_000) // 1_000_000)
    if pts <= plan.last_ms:  # Matroska needs increasing timestamps per track
        pts = plan.last_ms + 1
    plan.last_ms = pts
    if plan.first_ms is None:
        plan.first_ms = pts
    packet = av.Packet(frame.data)
    packet.stream = plan.stream
    packet.time_base = _MS
    packet.pts = packet.dts = pts
    packet.is_keyframe = frame.keyframe
    duration = frame.duration_ns // 1_000_000
    if duration:
        packet.duration = duration
    plan.end_ms = pts + duration
    plan.muxed += 1
    container.mux(packet)


def remux(dump_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> ArchiveInfo:
    """Turn a dump into a verified ``.mkv`` archive at ``out_path``; the dump is left alone."""
    dump_path = Path(dump_path)
    out_path = Path(out_path)
    reader, plans = _survey(dump_path)
    header = reader.header
    assert header is not None
    present = {i: p for i, p in plans.items() if p.playable}
    missing = tuple(p.info.track_id for i, p in plans.items() if i not in present)
    if not present:
        raise EmptyRecording(f"no playable media in {dump_path.name}", call_id=header.call_id)
    starts = [s for p in present.values() if (s := p.clock.start_ns()) is not None]
    t0_ns = min(starts)

    tmp = out_path.with_name(out_path.name + ".part")
    try:
        with av.open(str(tmp), "w", format="matroska") as container:
            container.metadata["title"] = f"Tongban call {header.call_id}"
            container.metadata["TONGBAN_CALL_ID"] = header.call_id
            container.metadata["TONGBAN_STARTED_AT"] = header.started_at.isoformat()
            for plan in present.values():
                plan.stream = _add_stream(container, plan)
                plan.assembler = TrackAssembler(
                    plan.info.codec,
                    plan.info.clock_rate,
                    plan.info.payload_type,
                    plan.clock.offsets,
                )
            for record in DumpReader(dump_path):
                if isinstance(record, DumpPacket):
                    maybe = present.get(record.track_index)
                    if maybe is not None and maybe.assembler is not None:
                        for frame in maybe.assembler.push(record.data):
                            _mux(container, maybe, frame, t0_ns)
            for plan in present.values():
                assert plan.assembler is not None
                for frame in plan.assembler.flush():
                    _mux(container, plan, frame, t0_ns)
                plan.stats = plan.assembler.stats
        expected_s = max(p.end_ms for p in present.values()) / 1000
        duration_s = verify_archive(tmp, list(present.values()), expected_s)
        digest = _sha256_and_sync(tmp)
        os.replace(tmp, out_path)
        _sync_dir(out_path.parent)
    except av.FFmpegError as err:
        tmp.unlink(missing_ok=True)
        raise RemuxError(f"muxing {dump_path.name} failed: {err}", call_id=header.call_id) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

    tracks = tuple(_archived(n, p) for n, p in enumerate(present.values()))
    return ArchiveInfo(
        path=out_path,
        call_id=header.call_id,
        started_at=header.started_at,
        duration_seconds=duration_s,
        size_bytes=out_path.stat().st_size,
        sha256=digest,
        codecs=tuple(sorted({p.info.codec for p in present.values()})),
        tracks=tracks,
        missing_tracks=missing,
        dump_torn=reader.torn,
        dump_clean_end=reader.clean_end,
    )


def _archived(index: int, plan: _Plan) -> ArchivedTrack:
    info = plan.info
    first = plan.first_ms or 0
    size = plan.stats.sizes[0] if plan.stats.sizes else plan.size
    return ArchivedTrack(
        stream_index=index,
        track_id=info.track_id,
        participant=info.participant,
        label=info.label,
        kind=info.kind,
        codec=info.codec,
        title=track_title(info),
        frames=plan.muxed,
        start_seconds=first / 1000,
        duration_seconds=max(0, plan.end_ms - first) / 1000,
        width=size[0] if size else None,
        height=size[1] if size else None,
        resolutions=tuple(plan.stats.sizes),
        lost_packets=plan.stats.lost,
        dropped_frames=plan.stats.dropped_frames,
    )


def verify_archive(path: Path, plans: list[_Plan], expected_s: float) -> float:
    """Re-open the archive and read every packet; raises :class:`RemuxError` on any doubt.

    Returns the container's duration in seconds.
    """
    try:
        with av.open(str(path)) as container:
            streams = list(container.streams)
            if len(streams) != len(plans):
                raise RemuxError(f"archive has {len(streams)} tracks, expected {len(plans)}")
            for stream, plan in zip(streams, plans, strict=True):
                if stream.metadata.get("title") != track_title(plan.info):
                    raise RemuxError(f"track {stream.index} lost its title")
            counts = [0] * len(streams)
            for packet in container.demux():
                if packet.size:
                    counts[packet.stream.index] += 1
            duration_s = (container.duration or 0) / av.time_base
    except av.FFmpegError as err:
        raise RemuxError(f"archive {path.name} does not read back: {err}") from err
    for count, plan in zip(counts, plans, strict=True):
        if count != plan.muxed:
            raise RemuxError(
                f"track {plan.info.track_id}: {count} packets read back, {plan.muxed} written"
            )
    if abs(duration_s - expected_s) > DURATION_TOLERANCE_S:
        raise RemuxError(f"archive lasts {duration_s:.1f} s, expected {expected_s:.1f} s")
    return duration_s


def _sha256_and_sync(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        os.fsync(f.fileno())
    return digest.hexdigest()


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finalize(dump_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> ArchiveInfo:
    """Remux, verify, and only then delete the dump. Blocking: run it in a thread."""
    info = remux(dump_path, out_path)
    Path(dump_path).unlink()
    return info


def recover(directory: str | os.PathLike[str]) -> list[ArchiveInfo]:
    """Finalize dumps a crash left behind in ``directory``; call it at start-up.

    Must not run while calls record into the same folder (it would finalize a live dump).
    A dump whose archive already exists is remuxed again: the archive is only renamed into
    place once verified, so the crash happened between that rename and deleting the dump,
    and remuxing is deterministic. Dumps that fail stay in place and are logged.
    """
    results: list[ArchiveInfo] = []
    for stale in Path(directory).glob(f"*{ARCHIVE_SUFFIX}.part"):
        stale.unlink(missing_ok=True)  # a remux the crash interrupted; redone below
    for dump in sorted(Path(directory).glob(f"*{DUMP_SUFFIX}")):
        try:
            results.append(finalize(dump, archive_path_for(dump)))
        except (RemuxError, ValueError, OSError) as err:
            log.error("could not recover recording %s: %s", dump.name, err)
    return results


__all__ = [
    "ARCHIVE_SUFFIX",
    "ArchiveInfo",
    "ArchivedTrack",
    "EmptyRecording",
    "RemuxError",
    "archive_path_for",
    "finalize",
    "recover",
    "remux",
    "track_title",
    "verify_archive",
]
