"""Which views a recording offers, from its stored track list (recorder/views.py)."""

from __future__ import annotations

from typing import Any

from recorder.views import find_view, plan_views


def track(n: int, who: str, label: str, start: float = 0.0, length: float = 60.0) -> dict[str, Any]:
    kind = "audio" if label == "audio" else "video"
    return {
        "stream_index": n,
        "title": f"{who} {label}",
        "participant": who,
        "label": label,
        "kind": kind,
        "codec": "OPUS" if kind == "audio" else "VP8",
        "start_seconds": start,
        "duration_seconds": length,
    }


def test_one_view_per_video_source_with_the_senders_voice() -> None:
    views = plan_views(
        [
            track(0, "fq.h1", "audio"),
            track(1, "fq.h1", "document", start=20, length=10),
            track(2, "fq.h1", "camera"),
            track(3, "zz.a1", "camera"),
            track(4, "zz.a1", "audio"),
            track(5, "fq.e1", "audio"),  # an expert who joined without a camera
        ]
    )
    assert [(v.id, v.streams, v.kind) for v in views] == [
        ("fq.h1 camera", (2, 0), "video"),
        ("fq.h1 document", (1, 0), "video"),
        ("zz.a1 camera", (3, 4), "video"),
        ("fq.e1 audio", (5,), "audio"),
    ]
    assert all(v.webm and v.content_type == "video/webm" for v in views)
    assert find_view(views, " zz.a1 camera ") is views[2]
    assert find_view(views, "zz.a1 document") is None
    assert len({v.file_name for v in views}) == 4


def test_a_source_sent_twice_and_the_audio_that_overlaps_it() -> None:
    """A participant who re-joined sent two cameras and two audio tracks: each camera gets
    its own view with the audio of the same stretch of the call."""
    views = plan_views(
        [
            track(0, "zz.a1", "camera", 0, 30),
            track(1, "zz.a1", "audio", 0, 30),
            track(2, "zz.a1", "camera", 40, 30),
            track(3, "zz.a1", "audio", 40, 30),
        ]
    )
    assert [(v.id, v.streams) for v in views] == [
        ("zz.a1 camera", (0, 1)),
        ("zz.a1 camera #2", (2, 3)),
    ]


def test_old_rows_and_h264() -> None:
    """Rows with titles only (participant and source taken from the title); H.264 is served
    as Matroska; nothing to play without tracks."""
    views = plan_views(
        [
            {"title": "zz.a1 camera", "kind": "video", "codec": "H264"},
            {"title": "zz.a1 audio", "kind": "audio", "codec": "OPUS"},
            "junk",
        ]
    )
    assert [(v.id, v.streams, v.suffix) for v in views] == [("zz.a1 camera", (0, 1), ".mkv")]
    assert views[0].content_type == "video/x-matroska"
    assert plan_views(None) == [] and plan_views([]) == []
