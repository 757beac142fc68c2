"""Real media through the recorder: aiortc-encoded RTP -> DumpWriter -> remux -> PyAV.

Covers R7 (every call recorded, every participant and source in one archive).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
import rtpgen
from rtpgen import audio_info, audio_track, schedule, video_info, video_track

from recorder.dump import DUMP_SUFFIX, DumpWriter
from recorder.remux import (
    ArchiveInfo,
    EmptyRecording,
    archive_path_for,
    finalize,
    recover,
    remux,
)

BASE_NS = 1_700_000_000_000_000_000
STARTED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def write_dump(
    path: Path, infos: list, plan: list[tuple[int, str, bytes]], *, jitter_ms: int = 0
) -> Path:
    rng = random.Random(7)
    writer = DumpWriter(path, "call-1", STARTED)
    for info in infos:
        writer.on_track(info)
    for offset, tid, data in plan:
        jitter = rng.randrange(0, jitter_ms * 1_000_000) if jitter_ms else 0
        writer.on_rtp(tid, data, BASE_NS + offset + jitter)
    writer.close()
    return path


def decode_all(path: Path) -> dict[int, list[tuple[int, int, float]]]:
    """Decode every packet of every stream; any decoder error fails the test.

    Returns per stream index a list of (width, height, time) of decoded frames.
    """
    out: dict[int, list[tuple[int, int, float]]] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            out[stream.index] = []
        for packet in container.demux():
            if packet.size == 0:
                continue
            for frame in packet.decode():
                size = (frame.width, frame.height) if packet.stream.type == "video" else (0, 0)
                out[packet.stream.index].append((*size, float(frame.time or 0)))
    return out


def titles(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [s.metadata.get("title", "") for s in container.streams]


def test_two_participants_every_track_in_one_synced_archive(tmp_path: Path) -> None:
    """R7, R6: camera, document camera and audio of both sides; B starts 1 s after A."""
    a_cam, a_mic = video_info("a/0", "zz.a1", "camera"), audio_info("a/1", "zz.a1")
    b_cam, b_doc = video_info("b/0", "fq.h1", "camera"), video_info("b/1", "fq.h1", "document")
    b_mic = audio_info("b/2", "fq.h1")
    tracks = {
        "a/0": video_track("VP8", 3, ssrc=1),
        "a/1": audio_track(3, ssrc=2),
        "b/0": video_track("VP8", 2, ssrc=3, ts_start=123456),
        "b/1": video_track("VP8", 2, ssrc=4, sizes=((240, 320),)),
        "b/2": audio_track(2, ssrc=5, ts_start=999),
    }
    plan = schedule(tracks, {"b/0": 1_000_000_000, "b/1": 1_000_000_000, "b/2": 1_000_000_000})
    dump = write_dump(
        tmp_path / f"c1{DUMP_SUFFIX}", [a_cam, a_mic, b_cam, b_doc, b_mic], plan, jitter_ms=30
    )

    info = remux(dump, tmp_path / "c1.mkv")

    assert isinstance(info, ArchiveInfo)
    assert titles(info.path) == [
        "zz.a1 camera",
        "zz.a1 audio",
        "fq.h1 camera",
        "fq.h1 document",
        "fq.h1 audio",
    ]
    assert abs(info.duration_seconds - 3.0) < 1.0
    assert info.codecs == ("VP8", "opus")
    assert info.size_bytes == info.path.stat().st_size
    assert len(info.sha256) == 64
    assert dump.exists()  # remux never deletes; finalize does
    by_id = {t.track_id: t for t in info.tracks}
    # Alignment: B's tracks start 1 s into the archive, within the 30 ms of jitter.
    for tid in ("b/0", "b/1", "b/2"):
        assert abs(by_id[tid].start_seconds - 1.0) < 0.05, by_id[tid]
    for tid in ("a/0", "a/1"):
        assert by_id[tid].start_seconds < 0.05
    assert (by_id["b/1"].width, by_id["b/1"].height) == (240, 320)
    decoded = decode_all(info.path)
    for track in info.tracks:
        frames = decoded[track.stream_index]
        assert frames, track
        assert len(frames) == track.frames  # every archived frame decodes
        if track.kind == "video":
            assert track.frames == (90 if track.participant == "zz.a1" else 60)
        assert abs(track.duration_seconds - (3.0 if track.participant == "zz.a1" else 2.0)) < 1.0
    with av.open(str(info.path)) as container:
        assert container.metadata.get("TONGBAN_CALL_ID") == "call-1"


def test_h264_track_with_opus(tmp_path: Path) -> None:
    cam, mic = video_info("a/0", "zz.a1", "camera", "H264"), audio_info("a/1", "zz.a1")
    tracks = {"a/0": video_track("H264", 3, sizes=((320, 240),)), "a/1": audio_track(3)}
    dump = write_dump(tmp_path / "h.tbdump", [cam, mic], schedule(tracks))

    info = remux(dump, tmp_path / "h.mkv")

    assert info.codecs == ("H264", "opus")
    assert abs(info.duration_seconds - 3.0) < 1.0
    video = info.tracks[0]
    assert (video.width, video.height) == (320, 240)
    decoded = decode_all(info.path)
    assert len(decoded[0]) == video.frames == 90
    assert all((w, h) == (320, 240) for w, h, _ in decoded[0])
    assert len(decoded[1]) == info.tracks[1].frames == 150
    with av.open(str(info.path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_loss_reordering_duplicates_and_wraparound(tmp_path: Path, codec: str) -> None:
    """2 % loss, swapped neighbours and duplicates, with sequence and timestamp wrapping."""
    rng = random.Random(1)
    pkts = video_track(
        codec,
        3,
        seq_start=65500,
        ts_start=2**32 - 90000,
        sizes=((640, 480),),
        bitrate=1_500_000,
    )
    assert len(pkts) > 200  # several packets per frame, so loss hits frames in the middle
    kept = [p for i, p in enumerate(pkts) if i < 20 or rng.random() > 0.02]
    for i in range(20, len(kept) - 1, 7):
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    for i in range(len(kept) - 20, 25, -50):
        kept.insert(i + 10, kept[i])  # late duplicates
    audio = audio_track(3, seq_start=65530, ts_start=2**32 - 48000)
    audio = [p for i, p in enumerate(audio) if i % 17 != 5]
    plan, arrival = [], 0
    for p in kept:  # arrival order is list order; times follow the media clock
        arrival = max(arrival, p.offset_ns)
        plan.append((arrival, "v", p.data))
    plan = sorted(plan + [(p.offset_ns, "s", p.data) for p in audio], key=lambda item: item[0])
    infos = [video_info("v", "fq.h1", "camera", codec), audio_info("s", "fq.h1")]
    dump = write_dump(tmp_path / "l.tbdump", infos, plan)

    info = remux(dump, tmp_path / "l.mkv")

    video, sound = info.tracks
    assert video.lost_packets > 0
    assert 0 < video.frames < 90
    assert sound.frames == len(audio)
    assert abs(info.duration_seconds - 3.0) < 1.0
    decoded = decode_all(info.path)
    assert len(decoded[0]) == video.frames


def test_ssrc_change_continues_the_track(tmp_path: Path) -> None:
    first = video_track("VP8", 1.5, ssrc=10, seq_start=100, ts_start=5000)
    second = video_track("VP8", 1.5, ssrc=11, seq_start=40000, ts_start=3_000_000_000)
    plan = [(p.offset_ns, "v", p.data) for p in first]
    plan += [(1_500_000_000 + p.offset_ns, "v", p.data) for p in second]
    dump = write_dump(tmp_path / "s.tbdump", [video_info("v", "fq.h1", "camera")], plan)

    info = remux(dump, tmp_path / "s.mkv")

    assert info.tracks[0].frames == 90
    assert abs(info.duration_seconds - 3.0) < 1.0
    times = [t for _, _, t in decode_all(info.path)[0]]
    assert times == sorted(times)
    assert abs(times[45] - 1.5) < 0.05


def test_resolution_change_mid_call(tmp_path: Path) -> None:
    pkts = video_track("VP8", 2, sizes=((320, 240), (160, 120)))
    dump = write_dump(
        tmp_path / "r.tbdump",
        [video_info("v", "fq.h1", "document")],
        [(p.offset_ns, "v", p.data) for p in pkts],
    )

    info = remux(dump, tmp_path / "r.mkv")

    assert info.tracks[0].resolutions == ((320, 240), (160, 120))
    sizes = [(w, h) for w, h, _ in decode_all(info.path)[0]]
    assert len(sizes) == 60
    assert sizes[0] == (320, 240) and sizes[-1] == (160, 120)


def test_torn_tail_is_tolerated(tmp_path: Path) -> None:
    tracks = {"v": video_track("VP8", 2), "s": audio_track(2)}
    dump = write_dump(
        tmp_path / "t.tbdump",
        [video_info("v", "fq.h1", "camera"), audio_info("s", "fq.h1")],
        schedule(tracks),
    )
    size = dump.stat().st_size
    with open(dump, "r+b") as f:
        f.truncate(size - 150)  # inside the last packet record (and past the end record)

    info = remux(dump, tmp_path / "t.mkv")

    assert info.dump_torn and not info.dump_clean_end
    assert abs(info.duration_seconds - 2.0) < 1.0
    decode_all(info.path)


def test_finalize_deletes_dump_only_after_success(tmp_path: Path) -> None:
    dump = write_dump(
        tmp_path / "f.tbdump",
        [audio_info("s", "fq.h1")],
        [(p.offset_ns, "s", p.data) for p in audio_track(1)],
    )
    empty = write_dump(tmp_path / "e.tbdump", [video_info("v", "fq.h1", "camera")], [])

    info = finalize(dump, archive_path_for(dump))

    assert not dump.exists() and info.path.exists()
    with pytest.raises(EmptyRecording):
        finalize(empty, archive_path_for(empty))
    assert empty.exists() and not archive_path_for(empty).exists()
    assert not list(tmp_path.glob("*.part"))


def test_recover_after_sigkill_keeps_media_up_to_the_kill(tmp_path: Path) -> None:
    """A recording process killed mid-call: the archive holds what was sent until the kill."""
    dump = tmp_path / f"killed{DUMP_SUFFIX}"
    (tmp_path / "killed.mkv.part").write_bytes(b"half an archive")  # an interrupted remux
    proc = subprocess.Popen(
        [sys.executable, rtpgen.__file__, str(dump), "6"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(rtpgen.__file__).parents[3])},
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        for line in proc.stdout:
            if float(line) >= 2.0:
                break
        proc.kill()
        written = [line.strip() for line in proc.stdout]
    finally:
        proc.kill()
        proc.wait()
    assert "done" not in written
    last_written = max([2.0] + [float(x) for x in written])

    (info,) = recover(tmp_path)

    assert not dump.exists() and not (tmp_path / "killed.mkv.part").exists()
    assert info.path == tmp_path / "killed.mkv"
    assert not info.dump_clean_end
    assert last_written - 1.0 <= info.duration_seconds <= last_written + 0.1
    assert [t.title for t in info.tracks] == ["fq.h1 camera", "fq.h1 audio"]
    decode_all(info.path)
