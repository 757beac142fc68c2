"""Raw, crash-safe dump of a call's RTP packets as they pass through the server.

The dump is what makes a crash lose only what was in flight: every packet is appended with one
``os.write`` on an ``O_APPEND`` descriptor, so once ``on_rtp`` returns the bytes are in the
kernel's page cache and survive a SIGKILL of this process. Remuxing into the archive happens
later (``recorder.remux``), off the event loop.

File layout: an 8-byte magic, then records. A record is
``u32 length | u8 kind | body | u32 crc32(kind + body)`` (big endian, ``length`` counts
``kind + body``). The checksum lets the reader tell a torn or zero-filled tail (power loss,
SIGKILL in the middle of a write) from real data; it stops cleanly there.

Kinds: ``H`` header (JSON: format, call id, start time), ``T`` track (JSON of
:class:`~media.ports.TrackInfo` plus its index), ``P`` packet (u16 track index, u64 arrival
ns, raw RTP), ``E`` clean end.

Durability: no fsync per packet. A process crash loses nothing that ``on_rtp`` accepted; a
machine crash or power loss loses what the kernel had not written back yet (normally at most
the ~5-30 s dirty-page writeback window). The owner may narrow that by calling
:meth:`DumpWriter.sync` every few seconds from a thread (``asyncio.to_thread``), never on the
event loop: fsync can take tens of milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from media.ports import TrackInfo

log = logging.getLogger(__name__)

MAGIC = b"TBDUMP1\n"
FORMAT_VERSION = 1
DUMP_SUFFIX = ".tbdump"

KIND_HEADER = ord("H")
KIND_TRACK = ord("T")
KIND_PACKET = ord("P")
KIND_END = ord("E")

_CRC = struct.Struct("!I")
_PACKET_HEAD = struct.Struct("!HQ")  # track index, arrival ns
MAX_RECORD = 1 << 20  # no RTP packet comes near this; a larger length means garbage


# --- pure format code -------------------------------------------------------------------


def encode_record(kind: int, body: bytes) -> bytes:
    """One length-prefixed, checksummed record, ready for a single write."""
    kb = bytes((kind,)) + body
    return len(kb).to_bytes(4, "big") + kb + _CRC.pack(zlib.crc32(kb))


def encode_packet(track_index: int, arrival_ns: int, packet: bytes) -> bytes:
    """A packet record; kept separate so the per-packet path does no JSON or dict work."""
    kb = b"P" + _PACKET_HEAD.pack(track_index, arrival_ns) + packet
    return len(kb).to_bytes(4, "big") + kb + _CRC.pack(zlib.crc32(kb))


@dataclass(frozen=True, slots=True)
class DumpHeader:
    call_id: str
    started_at: datetime
    version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class DumpTrack:
    index: int
    info: TrackInfo


@dataclass(frozen=True, slots=True)
class DumpPacket:
    track_index: int
    arrival_ns: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DumpEnd:
    pass


DumpRecord = DumpHeader | DumpTrack | DumpPacket | DumpEnd


def decode_record(kind: int, body: bytes) -> DumpRecord | None:
    """Parse one record's body; ``None`` for kinds this version does not know (skipped)."""
    if kind == KIND_PACKET:
        index, arrival = _PACKET_HEAD.unpack_from(body)
        return DumpPacket(index, arrival, body[_PACKET_HEAD.size :])
    if kind == KIND_TRACK:
        doc = json.loads(body)
        index = int(doc.pop("index"))
        return DumpTrack(index, TrackInfo(**doc))
    if kind == KIND_HEADER:
        doc = json.loads(body)
        return DumpHeader(
            call_id=str(doc["call_id"]),
            started_at=datetime.fromisoformat(doc["started_at"]),
            version=int(doc["version"]),
        )
    if kind == KIND_END:
        return DumpEnd()
    return None


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


# --- writer -----------------------------------------------------------------------------


class DumpWriter:
    """A :class:`~media.ports.PacketSink` that appends every packet to a dump file.

    Never raises into the media path: a failed write (disk full) is logged once, the writer
    stops writing and counts what it dropped, and the call goes on without a recording.
    """

    def __init__(self, path: str | os.PathLike[str], call_id: str, started_at: datetime) -> None:
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        self.path = Path(path)
        self.call_id = call_id
        self.started_at = started_at
        self.packets_written = 0
        self.packets_dropped = 0
        self.error: OSError | None = None
        self._tracks: dict[str, int] = {}
        # O_EXCL: a dump is never overwritten, not even by a restarted call with the same id.
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
        )
        header = {
            "version": FORMAT_VERSION,
            "call_id": call_id,
            "started_at": started_at.isoformat(),
        }
        self._write(MAGIC + encode_record(KIND_HEADER, _json(header)))

    @property
    def closed(self) -> bool:
        return self._fd is None

    def on_track(self, track: TrackInfo) -> None:
        """Declare a track; repeated declarations of the same id are ignored."""
        if self._fd is None or track.track_id in self._tracks:
            return
        index = len(self._tracks)
        self._tracks[track.track_id] = index
        doc = asdict(track)
        doc["index"] = index
        self._write(encode_record(KIND_TRACK, _json(doc)))

    def on_rtp(self, track_id: str, packet: bytes, arrival_ns: int) -> None:
        """Append one packet: one write syscall, no fsync, no exception to the caller."""
        index = self._tracks.get(track_id)
        if index is None or self._fd is None:
            self.packets_dropped += 1
            return
        if self._write(encode_packet(index, arrival_ns, packet)):
            self.packets_written += 1
        else:
            self.packets_dropped += 1

    def sync(self) -> None:
        """Flush the dump to disk; blocking, so call it from a thread, not the event loop."""
        fd = self._fd
        if fd is None:
            return
        try:
            os.fdatasync(fd)
        except OSError as err:  # closed meanwhile, or the disk went away
            log.warning("dump sync failed for %s: %s", self.path, err)

    def close(self) -> None:
        """Mark the dump complete and close it; idempotent."""
        if self._fd is None:
            return
        self._write(encode_record(KIND_END, b""))
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError as err:
            log.warning("closing dump %s failed: %s", self.path, err)

    def _write(self, data: bytes) -> bool:
        fd = self._fd
        if fd is None or self.error is not None:
            return False
        try:
            view = memoryview(data)
            while view:  # a regular file writes all at once unless the disk is full
                n = os.write(fd, view)
                view = view[n:]
        except OSError as err:
            self.error = err
            log.error("recording dump %s stopped: %s", self.path, err)
            return False
        return True


# --- reader -----------------------------------------------------------------------------


class DumpFormatError(ValueError):
    """The file is not a dump at all (bad magic or no header)."""


class DumpReader:
    """Iterates the records of a dump and stops cleanly at a torn or garbled tail.

    After iteration, ``torn`` tells whether the file ended inside a record and ``clean_end``
    whether the writer closed it properly.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.header: DumpHeader | None = None
        self.tracks: dict[int, TrackInfo] = {}
        self.torn = False
        self.clean_end = False
        self.valid_bytes = 0

    def __iter__(self) -> Iterator[DumpRecord]:
        self.torn = False
        self.clean_end = False
        self.tracks = {}
        with open(self.path, "rb", buffering=1 << 20) as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise DumpFormatError(f"{self.path} is not a Tongban dump")
            self.valid_bytes = len(MAGIC)
            first = True
            for kind, body in self._raw(f):
                record = decode_record(kind, body)
                if first:
                    if not isinstance(record, DumpHeader):
                        raise DumpFormatError(f"{self.path} has no header record")
                    self.header = record
                    first = False
                if isinstance(record, DumpTrack):
                    self.tracks[record.index] = record.info
                elif isinstance(record, DumpEnd):
                    self.clean_end = True
                if record is not None:
                    yield record
            if first:
                raise DumpFormatError(f"{self.path} has no header record")

    def _raw(self, f: BinaryIO) -> Iterator[tuple[int, bytes]]:
        while True:
            prefix = f.read(4)
            if not prefix:
                return
            if len(prefix) < 4:
                self.torn = True
                return
            length = int.from_bytes(prefix, "big")
            if length < 1 or length > MAX_RECORD:
                self.torn = True
                return
            rest = f.read(length + 4)
            if len(rest) < length + 4:
                self.torn = True
                return
            kb = rest[:length]
            if zlib.crc32(kb) != _CRC.unpack_from(rest, length)[0]:
                self.torn = True
                return
            self.valid_bytes += 4 + length + 4
            yield kb[0], kb[1:]
