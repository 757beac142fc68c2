"""The raw dump survives a crash: a torn or zero-filled tail ends reading cleanly."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media.ports import TrackInfo
from recorder import dump as dump_mod
from recorder.dump import (
    DumpEnd,
    DumpFormatError,
    DumpHeader,
    DumpPacket,
    DumpReader,
    DumpTrack,
    DumpWriter,
)

STARTED = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
CAM = TrackInfo("fq.h1/0", "fq.h1", "camera", "video", "VP8", 90000, 96)
MIC = TrackInfo("fq.h1/1", "fq.h1", "audio", "audio", "opus", 48000, 111, 2)


def write(path: Path, packets: int = 5) -> Path:
    writer = DumpWriter(path, "call-7", STARTED)
    writer.on_track(CAM)
    writer.on_track(MIC)
    for i in range(packets):
        writer.on_rtp(CAM.track_id if i % 2 else MIC.track_id, bytes([i]) * (20 + i), 1000 + i)
    writer.close()
    return path


def test_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tbdump")
    reader = DumpReader(path)
    records = list(reader)

    assert records[0] == DumpHeader("call-7", STARTED)
    assert records[1:3] == [DumpTrack(0, CAM), DumpTrack(1, MIC)]
    packets = [r for r in records if isinstance(r, DumpPacket)]
    assert [(p.track_index, p.arrival_ns, p.data) for p in packets[:2]] == [
        (1, 1000, bytes([0]) * 20),
        (0, 1001, bytes([1]) * 21),
    ]
    assert records[-1] == DumpEnd()
    assert reader.clean_end and not reader.torn
    assert reader.tracks == {0: CAM, 1: MIC}
    assert reader.valid_bytes == path.stat().st_size


def test_every_truncation_point_reads_cleanly(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tbdump", packets=3)
    full = path.read_bytes()
    complete = len(list(DumpReader(path)))
    header_only = DumpWriter(tmp_path / "h.tbdump", "call-7", STARTED)  # same header
    header_len = header_only.path.stat().st_size
    header_only.close()
    for cut in range(header_len, len(full)):
        path.write_bytes(full[:cut])
        reader = DumpReader(path)
        records = list(reader)
        assert 1 <= len(records) < complete
        assert reader.torn == (reader.valid_bytes != cut)
        assert not reader.clean_end


def test_zero_filled_tail_is_a_torn_tail(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tbdump")
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)  # what a filesystem may show after a power loss
    reader = DumpReader(path)
    assert isinstance(list(reader)[-1], DumpEnd)
    assert reader.torn


def test_flipped_byte_stops_reading_there(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tbdump")
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = DumpReader(path)
    list(reader)
    assert reader.torn and not reader.clean_end


def test_not_a_dump(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"hello world")
    with pytest.raises(DumpFormatError):
        list(DumpReader(tmp_path / "x"))
    (tmp_path / "y").write_bytes(dump_mod.MAGIC)
    with pytest.raises(DumpFormatError):
        list(DumpReader(tmp_path / "y"))


def test_writer_never_overwrites_and_needs_aware_start(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tbdump")
    with pytest.raises(FileExistsError):
        DumpWriter(path, "again", STARTED)
    with pytest.raises(ValueError):
        DumpWriter(tmp_path / "naive.tbdump", "c", datetime(2026, 1, 1))


def test_unknown_tracks_and_late_packets_are_counted_not_raised(tmp_path: Path) -> None:
    writer = DumpWriter(tmp_path / "d.tbdump", "c", STARTED)
    writer.on_track(CAM)
    writer.on_track(CAM)  # declared twice: once in the file
    writer.on_rtp("nobody/9", b"x" * 20, 1)
    writer.on_rtp(CAM.track_id, b"y" * 20, 2)
    writer.close()
    writer.close()  # idempotent
    writer.on_rtp(CAM.track_id, b"z" * 20, 3)
    assert (writer.packets_written, writer.packets_dropped) == (1, 2)
    assert sum(isinstance(r, DumpTrack) for r in DumpReader(writer.path)) == 1


def test_disk_full_stops_the_recording_not_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = DumpWriter(tmp_path / "d.tbdump", "c", STARTED)
    writer.on_track(CAM)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dump_mod.os, "write", full)
    writer.on_rtp(CAM.track_id, b"x" * 20, 1)
    writer.on_rtp(CAM.track_id, b"x" * 20, 2)
    monkeypatch.undo()
    writer.sync()
    writer.close()
    assert writer.error is not None and writer.error.errno == errno.ENOSPC
    assert writer.packets_dropped == 2
    assert not os.path.getsize(writer.path) == 0


def test_one_write_per_packet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = DumpWriter(tmp_path / "d.tbdump", "c", STARTED)
    writer.on_track(CAM)
    calls: list[int] = []
    real = os.write

    def counting(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real(fd, data)

    monkeypatch.setattr(dump_mod.os, "write", counting)
    writer.on_rtp(CAM.track_id, b"x" * 1200, 1)
    assert len(calls) == 1
    writer.close()
