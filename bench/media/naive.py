"""The baseline: a decode/re-encode relay built the aiortc way, same protocol.

``MediaRelay`` hands each participant's decoded tracks to the others' peer connections (which
encode them again) and a ``MediaRecorder`` per participant records them, as issue 4 describes
the naive server (``MediaRelay`` + ``MediaRecorder``): a WebM file per participant, VP8 and
Opus encoded by the recorder. Used only by the benchmark, to measure what RTP forwarding saves.
"""

from __future__ import annotations

import os
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder, MediaRelay

from media import aiortc_internals as ai

LABEL_KIND = {"camera": "video", "document": "video", "audio": "audio"}


class NaiveCall:
    def __init__(self, host_addresses: list[str], record_to: str | None = None) -> None:
        self._hosts = host_addresses
        self._record_to = record_to  # file name prefix; None: no recording
        self._recorders: dict[str, MediaRecorder] = {}
        self._relay = MediaRelay()
        self._pcs: dict[str, RTCPeerConnection] = {}
        self._tracks: dict[str, dict[str, MediaStreamTrack]] = {}  # participant -> label -> track
        self._sending: dict[str, dict[str, str]] = {}  # participant -> mid -> source key

    async def offer(self, participant: str, sdp: str, tracks: dict[str, str]) -> str:
        pc = self._pcs.get(participant)
        if pc is None:
            pc = ai.new_peer_connection([])
            self._pcs[participant] = pc
            self._tracks[participant] = {}
            self._sending[participant] = {}
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        ai.restrict_host_candidates(pc, self._hosts)
        by_mid = {t.mid: t for t in pc.getTransceivers()}
        for mid, label in tracks.items():
            t = by_mid[mid]
            if t.receiver.track is not None:
                self._tracks[participant][label] = t.receiver.track
        sending = self._sending[participant]
        free = [t for mid, t in by_mid.items() if mid not in tracks and mid not in sending]
        for other, labels in self._tracks.items():
            if other == participant:
                continue
            for label, track in labels.items():
                key = f"{other}/{label}"
                if key in sending.values():
                    continue
                slot = next((t for t in free if t.kind == LABEL_KIND[label]), None)
                if slot is None:
                    continue
                free.remove(slot)
                slot.sender.replaceTrack(self._relay.subscribe(track, buffered=False))
                slot.direction = "sendrecv"
                sending[str(slot.mid)] = key
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        if self._record_to is not None and participant not in self._recorders:
            recorder = MediaRecorder(f"{self._record_to}-{os.path.basename(participant)}.webm")
            for track in self._tracks[participant].values():
                recorder.addTrack(self._relay.subscribe(track, buffered=False))
            self._recorders[participant] = recorder
            await recorder.start()
        return str(pc.localDescription.sdp)

    def needs(self, participant: str) -> dict[str, int]:
        out = {"video": 0, "audio": 0}
        for other, labels in self._tracks.items():
            if other != participant:
                for label in labels:
                    out[LABEL_KIND[label]] += 1
        return out

    def stats(self) -> dict[str, Any]:
        return {"participants": len(self._pcs)}

    async def close(self) -> None:
        for recorder in self._recorders.values():
            await recorder.stop()
        self._recorders.clear()
        for pc in self._pcs.values():
            await pc.close()
        self._pcs.clear()
