"""The media of one call: one peer connection (leg) per participant, RTP forwarded between them.

Each participant offers (the browser is always the offerer, see media/README.md); the server
answers. Incoming RTP is taken from the leg's DTLS transport before aiortc's receivers see it,
rewritten per receiving leg and re-protected with that leg's SRTP context. Nothing is decoded.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from media import aiortc_internals as ai
from media import rtcp_wire, rtp_wire
from media.feedback import NackDeduper, RateLimiter, RembAggregator
from media.history import PacketHistory
from media.ports import PacketSink, TrackInfo
from media.rewrite import StreamRewriter
from media.stats import MediaCounters
from tongban.errors import InvalidInput, InvalidState

logger = logging.getLogger(__name__)

LABELS = {"camera": "video", "document": "video", "audio": "audio"}
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RECEIVE_QUEUE_LIMIT = 2048  # datagrams waiting in aioice per leg (~6 s of one call's media)
MAX_SDP_BYTES = 64 * 1024
MAX_TRACKS_PER_PARTICIPANT = 4
# A newly negotiated m-line starts carrying packets this long after its answer was made:
# an SSRC the client has not yet seen in an answer is misrouted by aiortc (it binds unknown
# SSRCs to the only receiver with that payload type) and dropped by browsers.
ACTIVATION_DELAY = 0.5

RenegotiateCallback = Callable[[str, dict[str, int]], None]


@dataclass(eq=False)
class IngressTrack:
    """One track a participant sends, identified by its m-line (mid)."""

    leg: Leg
    mid: str
    label: str
    kind: str
    track_id: str
    codecs: dict[int, ai.NegotiatedCodec]  # media payload types (no RTX)
    rtx_pts: dict[int, int]  # rtx pt -> media pt
    extensions: dict[int, str]
    ssrcs: set[int]
    rtx_ssrcs: dict[int, int]  # rtx ssrc -> media ssrc
    rtcp_ssrc: int  # our SSRC in feedback sent to this participant about this track
    media_ssrc: int | None = None  # last media SSRC seen
    outs: list[OutStream] = field(default_factory=list)
    pli: RateLimiter = field(default_factory=RateLimiter)
    nacks: NackDeduper = field(default_factory=NackDeduper)
    remb: RembAggregator = field(default_factory=RembAggregator)
    announced: bool = False


@dataclass(eq=False)
class OutStream:
    """One m-line of a receiving leg that carries one other participant's track."""

    leg: Leg
    mid: str
    kind: str
    transceiver: RTCRtpTransceiver
    track: ai.IdleTrack
    rewriter: StreamRewriter
    source: IngressTrack | None = None
    ssrc: int = 0
    rtx_ssrc: int = 0
    rtx_seq: int = field(default_factory=lambda: secrets.randbelow(1 << 15))
    codecs: list[ai.NegotiatedCodec] = field(default_factory=list)
    extensions: dict[int, str] = field(default_factory=dict)
    pt_map: dict[int, int] = field(default_factory=dict)  # source pt -> our pt
    rtx_pt: dict[int, int] = field(default_factory=dict)  # our media pt -> our rtx pt
    ext_passthrough: bool = True
    ext_map: dict[int, int] = field(default_factory=dict)  # source id -> our id
    # Same extension ids, only the mid value differs: overwrite it in place (one-byte form).
    mid_patch_id: int | None = None
    mid_value: bytes = b""
    active: bool = False
    activation: asyncio.TimerHandle | None = None
    want_keyframe: bool = True
    packets: int = 0
    octets: int = 0
    history: PacketHistory = field(default_factory=PacketHistory)


class Leg:
    """One participant's peer connection."""

    def __init__(self, call: CallMedia, participant: str, pc: RTCPeerConnection) -> None:
        self.call = call
        self.participant = participant
        self.pc = pc
        self.sender: ai.LegSender | None = None
        self.dtls: Any = None
        self.ingress: dict[str, IngressTrack] = {}  # mid -> track
        self.ingress_by_ssrc: dict[int, IngressTrack] = {}
        self.outs: dict[str, OutStream] = {}  # mid -> out stream
        self.outs_by_ssrc: dict[int, OutStream] = {}
        self.assignment: dict[str, str] = {}  # remote track_id -> mid
        self.unassigned: dict[str, int] = {"audio": 0, "video": 0}
        self.connected = False

    # -- incoming ------------------------------------------------------------------------

    def on_rtp(self, data: bytes) -> None:
        call = self.call
        c = call.counters
        c.packets_in += 1
        try:
            header = rtp_wire.parse_header(data)
        except ValueError:
            c.malformed_rtp += 1
            c.packets_dropped += 1
            return
        track = self.ingress_by_ssrc.get(header.ssrc)
        if track is None:
            track = self._learn_ssrc(data, header)
            if track is None:
                c.dropped_unknown_source += 1
                c.packets_dropped += 1
                return
        retransmission = False
        if header.ssrc in track.rtx_ssrcs or header.payload_type in track.rtx_pts:
            media_pt = track.rtx_pts.get(header.payload_type)
            media_ssrc = track.rtx_ssrcs.get(header.ssrc, track.media_ssrc)
            if media_pt is None or media_ssrc is None:
                c.packets_dropped += 1
                return
            try:
                data = rtp_wire.unwrap_rtx(data, header, payload_type=media_pt, ssrc=media_ssrc)
                header = rtp_wire.parse_header(data)
            except ValueError:  # padding-only bandwidth probe: nothing to forward
                c.packets_dropped += 1
                return
            c.rtx_in += 1
            retransmission = True
        elif header.payload_type not in track.codecs:
            c.packets_dropped += 1
            return
        else:
            track.media_ssrc = header.ssrc
        now = time.monotonic()
        sink = call.sink
        if sink is not None:
            try:
                if not track.announced:
                    track.announced = True
                    sink.on_track(call.track_info(track, header.payload_type))
                sink.on_rtp(track.track_id, data, time.time_ns())
            except Exception:
                c.sink_errors += 1
                logger.exception("packet sink failed for %s", track.track_id)
        sent = 0
        for out in track.outs:
            sent += out_forward(out, data, header, retransmission, now)
        if not sent:
            c.packets_dropped += 1

    def _learn_ssrc(self, data: bytes, header: rtp_wire.RtpHeader) -> IngressTrack | None:
        """An SSRC the SDP did not announce: find its track by the mid header extension."""
        if header.ext_profile is None or len(self.ingress_by_ssrc) > 64:
            return None
        body = data[header.ext_start : header.ext_end]
        try:
            elements = rtp_wire.parse_extensions(header.ext_profile, body)
        except ValueError:
            return None
        for track in self.ingress.values():
            mid_ids = [i for i, uri in track.extensions.items() if uri == MID_URI]
            for ext_id, value in elements:
                if ext_id in mid_ids and value.decode("utf-8", "replace") == track.mid:
                    if header.payload_type in track.rtx_pts:
                        if track.media_ssrc is None:
                            return None
                        track.rtx_ssrcs[header.ssrc] = track.media_ssrc
                    else:
                        track.ssrcs.add(header.ssrc)
                    self.ingress_by_ssrc[header.ssrc] = track
                    return track
        return None

    def on_rtcp(self, data: bytes) -> None:
        call = self.call
        c = call.counters
        c.rtcp_in += 1
        try:
            packets = rtcp_wire.parse_compound(data)
        except ValueError:
            c.malformed_rtcp += 1
            return
        now = time.monotonic()
        for packet in packets:
            if isinstance(packet, rtcp_wire.RtcpSr):
                self._forward_sr(packet)
                self._reports_backward(packet.reports)
            elif isinstance(packet, rtcp_wire.RtcpRr):
                self._reports_backward(packet.reports)
            elif isinstance(packet, rtcp_wire.RtcpNack):
                self._answer_nack(packet, now)
            elif isinstance(packet, rtcp_wire.RtcpPli):
                out = self.outs_by_ssrc.get(packet.media_ssrc)
                c.plis_received += 1
                if out is not None and out.source is not None:
                    call.request_keyframe(out.source, now)
            elif isinstance(packet, rtcp_wire.RtcpFir):
                c.plis_received += 1
                for ssrc, _ in packet.entries:
                    out = self.outs_by_ssrc.get(ssrc)
                    if out is not None and out.source is not None:
                        call.request_keyframe(out.source, now)
            elif isinstance(packet, rtcp_wire.RtcpRemb):
                self._remb_backward(packet, now)

    def _forward_sr(self, sr: rtcp_wire.RtcpSr) -> None:
        track = self.ingress_by_ssrc.get(sr.ssrc)
        if track is None or sr.ssrc in track.rtx_ssrcs:
            return
        for out in track.outs:
            if not out.active or out.leg.sender is None:
                continue
            rtp_ts = out.rewriter.out_timestamp(sr.ssrc, sr.rtp_timestamp)
            if rtp_ts is None:
                continue
            report = rtcp_wire.RtcpSr(
                out.ssrc, sr.ntp_timestamp, rtp_ts, out.packets, out.octets, []
            )
            if out.leg.sender.send_rtcp(rtcp_wire.serialize(report)):
                self.call.counters.rtcp_out += 1

    def _reports_backward(self, blocks: list[rtcp_wire.ReportBlock]) -> None:
        per_source: dict[IngressTrack, list[rtcp_wire.ReportBlock]] = {}
        for block in blocks:
            out = self.outs_by_ssrc.get(block.ssrc)
            if out is None or out.source is None or out.source.media_ssrc is None:
                continue
            src = out.source
            block_out = rtcp_wire.ReportBlock(
                ssrc=out.source.media_ssrc,
                fraction_lost=block.fraction_lost,
                packets_lost=block.packets_lost,
                highest_sequence=out.rewriter.source_extended_seq(block.highest_sequence),
                jitter=block.jitter,
                lsr=block.lsr,
                dlsr=block.dlsr,
            )
            per_source.setdefault(src, []).append(block_out)
        for src, translated in per_source.items():
            rr = rtcp_wire.RtcpRr(src.rtcp_ssrc, translated)
            self.call.send_rtcp(src.leg, rtcp_wire.serialize(rr))

    def _answer_nack(self, nack: rtcp_wire.RtcpNack, now: float) -> None:
        c = self.call.counters
        out = self.outs_by_ssrc.get(nack.media_ssrc)
        if out is None or self.sender is None:
            return
        missing: list[int] = []
        for seq in nack.lost:
            c.nacks_received += 1
            packet = out.history.get(seq)
            if packet is None:
                src_seq = out.rewriter.source_seq(seq)
                if src_seq is not None:
                    missing.append(src_seq)
                continue
            if out_retransmit(out, packet):
                c.nacks_answered += 1
        src = out.source
        if missing and src is not None and src.media_ssrc is not None:
            ask = src.nacks.filter(missing, now)
            if ask:
                c.nacks_forwarded += len(ask)
                upstream = rtcp_wire.RtcpNack(src.rtcp_ssrc, src.media_ssrc, ask)
                self.call.send_rtcp(src.leg, rtcp_wire.serialize(upstream))

    def _remb_backward(self, remb: rtcp_wire.RtcpRemb, now: float) -> None:
        sources: set[IngressTrack] = set()
        for ssrc in remb.ssrcs:
            out = self.outs_by_ssrc.get(ssrc)
            if out is not None and out.source is not None:
                sources.add(out.source)
        for src in sources:
            if src.media_ssrc is None:
                continue
            bitrate = src.remb.update(self.participant, remb.bitrate, now)
            upstream = rtcp_wire.RtcpRemb(src.rtcp_ssrc, bitrate, [src.media_ssrc])
            self.call.send_rtcp(src.leg, rtcp_wire.serialize(upstream))

    def on_receive_error(self, err: BaseException) -> None:
        """A bug in the forwarding path: counted and logged, the packet is lost, media goes on."""
        c = self.call.counters
        c.receive_errors += 1
        if c.receive_errors & (c.receive_errors - 1) == 0:  # 1st, 2nd, 4th, 8th...: no flood
            logger.error(
                "forwarding a packet from %s failed (%d so far)",
                self.participant,
                c.receive_errors,
                exc_info=err,
            )

    def on_connected(self) -> None:
        self.connected = True
        now = time.monotonic()
        for out in self.outs.values():
            if out.source is not None and out.active:
                self.call.request_keyframe(out.source, now, force=True)


def out_forward(
    out: OutStream, data: bytes, header: rtp_wire.RtpHeader, retransmission: bool, now: float
) -> int:
    """Send one source packet on one receiving stream; 1 if sent, else 0 (counted)."""
    leg = out.leg
    c = leg.call.counters
    sender = leg.sender
    if not out.active or sender is None or not leg.connected:
        c.dropped_not_connected += 1
        out.want_keyframe = True
        return 0
    pt = out.pt_map.get(header.payload_type)
    if pt is None:
        return 0
    mapped = out.rewriter.map(header.ssrc, header.sequence_number, header.timestamp, now)
    if mapped is None:
        return 0
    seq, ts = mapped
    if retransmission and out.history.get(seq) is not None:
        return 0  # this leg already has it; the retransmission was for another receiver
    ext_block: bytes | None = None
    patch: tuple[int, bytes] | None = None
    if not out.ext_passthrough and header.ext_profile is not None:
        mid_id = out.mid_patch_id
        if mid_id is not None and header.ext_profile == rtp_wire.ONE_BYTE_PROFILE:
            element = rtp_wire.one_byte_element(data, header, mid_id)
            if element is not None:
                if element[1] == len(out.mid_value):
                    patch = (element[0], out.mid_value)
                else:
                    ext_block = _rewrite_extensions(out, data, header)
        else:
            ext_block = _rewrite_extensions(out, data, header)
    if ext_block is None and patch is None:
        packet = rtp_wire.rewrite_fixed(data, pt, seq, ts, out.ssrc)
    else:
        packet = rtp_wire.rewrite(
            data,
            header,
            payload_type=pt,
            sequence_number=seq,
            timestamp=ts,
            ssrc=out.ssrc,
            extension_block=ext_block,
            patch=patch,
        )
    out.history.put(seq, packet)
    if retransmission:
        ok = out_retransmit(out, packet)
    else:
        ok = sender.send_rtp(packet)
    if not ok:
        return 0
    c.packets_out += 1
    out.packets += 1
    out.octets += header.payload_end - header.ext_end
    if out.want_keyframe:
        out.want_keyframe = False
        if out.source is not None:
            leg.call.request_keyframe(out.source, now)
    return 1


def out_retransmit(out: OutStream, packet: bytes) -> bool:
    """Re-send a packet from the history, as RTX when the leg negotiated it."""
    sender = out.leg.sender
    if sender is None:
        return False
    header = rtp_wire.parse_header(packet)
    rtx_pt = out.rtx_pt.get(header.payload_type)
    if rtx_pt is not None:
        packet = rtp_wire.wrap_rtx(
            packet, header, payload_type=rtx_pt, sequence_number=out.rtx_seq, ssrc=out.rtx_ssrc
        )
        out.rtx_seq = (out.rtx_seq + 1) & 0xFFFF
    if sender.send_rtp(packet):
        out.leg.call.counters.packets_out += 1
        return True
    return False


def _rewrite_extensions(out: OutStream, data: bytes, header: rtp_wire.RtpHeader) -> bytes:
    assert header.ext_profile is not None
    src = out.source
    try:
        elements = rtp_wire.parse_extensions(
            header.ext_profile, data[header.ext_start : header.ext_end]
        )
    except ValueError:
        return b""
    kept = []
    for ext_id, value in elements:
        our_id = out.ext_map.get(ext_id)
        if our_id is None:
            continue
        if src is not None and src.extensions.get(ext_id) == MID_URI:
            value = out.mid.encode()
        kept.append((our_id, value))
    return rtp_wire.build_extensions(kept)


class CallMedia:
    """All media of one call. Not thread-safe; use from one event loop."""

    def __init__(
        self,
        call_id: str,
        *,
        ice_servers: list[dict[str, Any]],
        host_addresses: list[str] | None,
        sink: PacketSink | None,
        on_renegotiate: RenegotiateCallback | None = None,
        admit: Callable[[str], None] | None = None,
        release: Callable[[str], None] | None = None,
    ) -> None:
        ai.check_versions()
        for server in ice_servers:
            ai.ice_server(server)  # validate now, not at the first offer
        self.call_id = call_id
        self.sink = sink
        self.counters = MediaCounters()
        self._ice_servers = list(ice_servers)
        self._host_addresses = list(host_addresses) if host_addresses is not None else None
        self._on_renegotiate = on_renegotiate
        self._admit = admit
        self._release = release
        self._legs: dict[str, Leg] = {}
        self._order: list[str] = []  # participants in join order
        self._closed = False
        self._lock = asyncio.Lock()

    # -- public API ----------------------------------------------------------------------

    @property
    def participants(self) -> list[str]:
        return list(self._order)

    async def offer(self, participant: str, sdp: str, tracks: dict[str, str]) -> str:
        """Apply a participant's (re-)offer and return the answer SDP.

        ``tracks`` maps each mid the participant sends on to "camera"|"document"|"audio".
        The answer carries one track of every other participant per receive-capable
        m-line of the right kind; see :meth:`receive_needs` for how many it should offer.
        """
        self._check_offer_args(participant, sdp, tracks)
        async with self._lock:
            if self._closed:
                raise InvalidState("call media is closed", state="closed")
            try:
                description = ai.parse_sdp(sdp)
            except ValueError as err:
                raise InvalidInput("malformed SDP offer", reason=str(err)) from err
            offered = {m.mid: m for m in ai.remote_media(description)}
            self._check_tracks_against_sdp(offered, tracks)
            leg = self._legs.get(participant)
            new_leg = leg is None
            if leg is None:
                if self._admit is not None:
                    self._admit(participant)  # raises LimitReached
                try:
                    leg = Leg(self, participant, ai.new_peer_connection(self._ice_servers))
                except Exception:
                    if self._release is not None:
                        self._release(participant)
                    raise
                self._legs[participant] = leg
                self._order.append(participant)
            try:
                answer = await self._negotiate(leg, sdp, offered, tracks)
            except InvalidInput:
                if new_leg:
                    await self._drop_leg(participant)
                raise
            self._notify_others(participant)
            return answer

    async def add_candidate(self, participant: str, candidate: Mapping[str, Any]) -> None:
        """A trickled RTCIceCandidateInit ``{candidate, sdpMid, sdpMLineIndex}``."""
        leg = self._legs.get(participant)
        if leg is None:
            raise InvalidState(f"{participant} has no media leg yet", state="no_offer")
        if not isinstance(candidate, Mapping):
            raise InvalidInput("candidate must be an object")
        text = candidate.get("candidate")
        mid = candidate.get("sdpMid")
        index = candidate.get("sdpMLineIndex")
        if not isinstance(text, str) or len(text) > 1024:
            raise InvalidInput("candidate.candidate must be a string")
        if mid is not None and not isinstance(mid, str):
            raise InvalidInput("candidate.sdpMid must be a string")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise InvalidInput("candidate.sdpMLineIndex must be an integer")
        if mid is None and index is None:
            raise InvalidInput("candidate needs sdpMid or sdpMLineIndex")
        if not text.strip():
            return  # end-of-candidates marker from the browser: nothing to add
        try:
            parsed = ai.parse_candidate(text, mid, index)
        except ValueError as err:
            raise InvalidInput("malformed ICE candidate", reason=str(err)) from err
        try:
            await leg.pc.addIceCandidate(parsed)
        except Exception as err:
            raise InvalidInput("ICE candidate rejected", reason=str(err)) from err

    async def remove_participant(self, participant: str) -> None:
        async with self._lock:
            if participant not in self._legs:
                return
            await self._drop_leg(participant)
            self._notify_others(participant)

    async def close(self) -> None:
        """Release every peer connection and the sink; safe to call more than once."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            for participant in list(self._legs):
                await self._drop_leg(participant)
            if self.sink is not None:
                try:
                    self.sink.close()
                except Exception:
                    logger.exception("packet sink close failed")
            self.sink = None
            self._on_renegotiate = None

    def receive_needs(self, participant: str) -> dict[str, int]:
        """How many receive-capable m-lines of each kind the participant's offer needs."""
        needs = {"audio": 0, "video": 0}
        for leg in self._legs.values():
            if leg.participant != participant:
                for track in leg.ingress.values():
                    needs[track.kind] += 1
        return needs

    def receive_map(self, participant: str) -> dict[str, dict[str, str]]:
        """For the participant's answer: mid -> {participant, label, kind} it receives."""
        leg = self._legs.get(participant)
        if leg is None:
            return {}
        out: dict[str, dict[str, str]] = {}
        for mid, stream in leg.outs.items():
            if stream.source is not None:
                src = stream.source
                out[mid] = {
                    "participant": src.leg.participant,
                    "label": src.label,
                    "kind": src.kind,
                }
        return out

    def receive_paths(self) -> dict[str, tuple[bool, int]]:
        """Per participant: (SRTP taken in the socket callback, datagrams queued in aioice).

        For tests and diagnosis: once connected, the first should be True and the second ~0.
        """
        return {name: ai.receive_path(leg.dtls) for name, leg in self._legs.items() if leg.dtls}

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.counters.as_dict()
        result["call_id"] = self.call_id
        result["participants"] = len(self._legs)
        result["connected"] = sum(1 for leg in self._legs.values() if leg.connected)
        return result

    @property
    def closed(self) -> bool:
        return self._closed

    # -- used by legs --------------------------------------------------------------------

    def track_info(self, track: IngressTrack, payload_type: int) -> TrackInfo:
        codec = track.codecs.get(payload_type) or next(iter(track.codecs.values()))
        return TrackInfo(
            track_id=track.track_id,
            participant=track.leg.participant,
            label=track.label,
            kind=track.kind,
            codec=codec.name,
            clock_rate=codec.clock_rate,
            payload_type=codec.payload_type,
            channels=codec.channels,
        )

    def send_rtcp(self, leg: Leg, packet: bytes) -> None:
        if leg.sender is not None and leg.sender.send_rtcp(packet):
            self.counters.rtcp_out += 1

    def request_keyframe(self, track: IngressTrack, now: float, *, force: bool = False) -> None:
        """PLI to the source, at most one per 0.5 s per track (``force`` still records it)."""
        if track.kind != "video" or track.media_ssrc is None:
            return
        allowed = track.pli.allow(now)
        if not (allowed or force):
            return
        pli = rtcp_wire.RtcpPli(track.rtcp_ssrc, track.media_ssrc)
        self.send_rtcp(track.leg, rtcp_wire.serialize(pli))
        self.counters.plis_sent += 1

    # -- negotiation ---------------------------------------------------------------------

    def _check_offer_args(self, participant: str, sdp: str, tracks: dict[str, str]) -> None:
        if not isinstance(participant, str) or not participant or len(participant) > 128:
            raise InvalidInput("participant must be a non-empty string")
        if not isinstance(sdp, str) or not sdp.strip():
            raise InvalidInput("SDP offer must be a non-empty string")
        if len(sdp) > MAX_SDP_BYTES:
            raise InvalidInput("SDP offer too large")
        if not isinstance(tracks, dict) or len(tracks) > MAX_TRACKS_PER_PARTICIPANT:
            raise InvalidInput("tracks must map at most 4 mids to labels")
        for mid, label in tracks.items():
            if not isinstance(mid, str) or label not in LABELS:
                raise InvalidInput(
                    "tracks must map mids to 'camera', 'document' or 'audio'", mid=str(mid)
                )
        if len(set(tracks.values())) != len(tracks):
            raise InvalidInput("each label may be used once per participant")

    @staticmethod
    def _check_tracks_against_sdp(
        offered: Mapping[str, ai.RemoteMedia], tracks: Mapping[str, str]
    ) -> None:
        if not offered:
            raise InvalidInput("SDP offer has no audio or video m-line")
        if not all(m.secure for m in offered.values()):
            raise InvalidInput("SDP offer lacks DTLS fingerprint or ICE credentials")
        for mid, label in tracks.items():
            media = offered.get(mid)
            if media is None:
                raise InvalidInput("tracks names a mid the offer does not have", mid=mid)
            if media.kind != LABELS[label]:
                raise InvalidInput(f"mid {mid} is {media.kind}, not {label}", mid=mid)
            if media.direction not in ("sendrecv", "sendonly"):
                raise InvalidInput(f"mid {mid} does not send ({media.direction})", mid=mid)

    async def _negotiate(
        self,
        leg: Leg,
        sdp: str,
        offered: Mapping[str, ai.RemoteMedia],
        tracks: Mapping[str, str],
    ) -> str:
        pc = leg.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as err:  # aiortc: IndexError/AttributeError/ValueError/OperationError
            raise InvalidInput("SDP offer rejected", reason=f"{type(err).__name__}: {err}") from err
        if leg.dtls is None:
            self._attach_transport(leg)
        by_mid = {t.mid: t for t in pc.getTransceivers() if t.mid is not None}
        self._update_ingress(leg, by_mid, offered, tracks)
        self._assign_outgoing(leg, by_mid)
        try:
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            raise InvalidInput("cannot answer this offer", reason=reason) from err
        self._activate_outgoing(leg)
        for track in leg.ingress.values():
            for out in track.outs:
                _map_payloads(out)
        local = pc.localDescription
        assert local is not None
        return str(local.sdp)

    def _attach_transport(self, leg: Leg) -> None:
        if self._host_addresses is not None:
            ai.restrict_host_candidates(leg.pc, self._host_addresses)
        dtls = ai.bundle_transport(leg.pc)
        leg.dtls = dtls
        leg.sender = ai.LegSender(dtls)
        ai.install_packet_hooks(dtls, leg.on_rtp, leg.on_rtcp)

        def queue_full() -> None:
            self.counters.dropped_queue_full += 1
            self.counters.packets_dropped += 1

        ai.bound_receive_queue(dtls, RECEIVE_QUEUE_LIMIT, queue_full)

        def connected() -> None:
            # From now on SRTP is decrypted and forwarded in the socket callback itself.
            ai.install_fast_receive(dtls, leg.on_rtp, leg.on_rtcp, leg.on_receive_error)
            leg.on_connected()

        ai.on_state_connected(dtls, connected)

    def _update_ingress(
        self,
        leg: Leg,
        by_mid: Mapping[str, RTCRtpTransceiver],
        offered: Mapping[str, ai.RemoteMedia],
        tracks: Mapping[str, str],
    ) -> None:
        for mid in list(leg.ingress):
            if tracks.get(mid) != leg.ingress[mid].label:
                self._remove_ingress(leg, leg.ingress.pop(mid))
        for mid, label in tracks.items():
            media = offered[mid]
            transceiver = by_mid[mid]
            codecs = ai.negotiated_codecs(transceiver)
            media_codecs = {c.payload_type: c for c in codecs if c.name.lower() != "rtx"}
            rtx_pts = {
                c.payload_type: c.apt
                for c in codecs
                if c.name.lower() == "rtx" and c.apt is not None
            }
            ssrcs = set(media.ssrcs) - set(media.rtx)
            track = leg.ingress.get(mid)
            if track is None:
                track = IngressTrack(
                    leg=leg,
                    mid=mid,
                    label=label,
                    kind=LABELS[label],
                    track_id=f"{leg.participant}/{mid}",
                    codecs=media_codecs,
                    rtx_pts=rtx_pts,
                    extensions=ai.negotiated_extensions(transceiver),
                    ssrcs=ssrcs,
                    rtx_ssrcs=dict(media.rtx),
                    rtcp_ssrc=ai.sender_ssrcs(transceiver)[0],
                )
                leg.ingress[mid] = track
            else:
                for ssrc in track.ssrcs | set(track.rtx_ssrcs):
                    leg.ingress_by_ssrc.pop(ssrc, None)
                track.codecs = media_codecs
                track.rtx_pts = rtx_pts
                track.extensions = ai.negotiated_extensions(transceiver)
                track.ssrcs = ssrcs
                track.rtx_ssrcs = dict(media.rtx)
            for ssrc in track.ssrcs | set(track.rtx_ssrcs):
                leg.ingress_by_ssrc[ssrc] = track

    def _remove_ingress(self, leg: Leg, track: IngressTrack) -> None:
        for ssrc in [s for s, t in leg.ingress_by_ssrc.items() if t is track]:
            del leg.ingress_by_ssrc[ssrc]
        for out in track.outs:
            out.source = None
            out.leg.assignment.pop(track.track_id, None)
        track.outs.clear()

    def _remote_tracks(self, leg: Leg) -> list[IngressTrack]:
        order = {"camera": 0, "document": 1, "audio": 2}
        result = []
        for name in self._order:
            other = self._legs.get(name)
            if other is None or other is leg:
                continue
            result += sorted(other.ingress.values(), key=lambda t: order[t.label])
        return result

    def _assign_outgoing(self, leg: Leg, by_mid: Mapping[str, RTCRtpTransceiver]) -> None:
        capable = {
            mid: t
            for mid, t in by_mid.items()
            if ai.offered_direction(t) in ("sendonly", "sendrecv") and mid not in leg.ingress
        }
        # Own sending m-lines are used for receiving only when nothing else is free.
        spare = {
            mid: t
            for mid, t in by_mid.items()
            if ai.offered_direction(t) == "sendrecv" and mid in leg.ingress
        }
        wanted = self._remote_tracks(leg)
        wanted_ids = {t.track_id for t in wanted}
        for track_id in [k for k in leg.assignment if k not in wanted_ids]:
            stale = leg.outs.get(leg.assignment.pop(track_id))
            if stale is not None:
                stale.source = None
        used: set[str] = set()
        for track in wanted:
            kept = leg.assignment.get(track.track_id)
            if kept is None:
                continue
            if kept not in by_mid or (kept not in capable and kept not in spare):
                leg.assignment.pop(track.track_id, None)
            else:
                used.add(kept)
        leg.unassigned = {"audio": 0, "video": 0}
        for track in wanted:
            if track.track_id in leg.assignment:
                continue
            pick: str | None = None
            for pool in (capable, spare):
                for candidate_mid, t in pool.items():
                    if candidate_mid not in used and t.kind == track.kind:
                        pick = candidate_mid
                        break
                if pick is not None:
                    break
            if pick is None:
                leg.unassigned[track.kind] += 1
                continue
            used.add(pick)
            leg.assignment[track.track_id] = pick
        mid_to_track = {mid: tid for tid, mid in leg.assignment.items()}
        tracks_by_id = {t.track_id: t for t in wanted}
        for mid, transceiver in by_mid.items():
            assigned_id = mid_to_track.get(mid)
            out = leg.outs.get(mid)
            if assigned_id is None:
                if out is not None:
                    if out.source is not None and out in out.source.outs:
                        out.source.outs.remove(out)
                    out.source = None
                    out.active = False
                if mid not in leg.ingress:
                    transceiver.direction = "recvonly"  # answers "inactive": nothing to send
                continue
            src = tracks_by_id[assigned_id]
            if out is None:
                out = OutStream(
                    leg=leg,
                    mid=mid,
                    kind=transceiver.kind,
                    transceiver=transceiver,
                    track=ai.IdleTrack(transceiver.kind, f"{src.leg.participant}:{src.label}"),
                    rewriter=StreamRewriter(
                        90000 if transceiver.kind == "video" else 48000,
                        first_seq=secrets.randbelow(1 << 15),
                        first_ts=secrets.randbits(32),
                    ),
                )
                leg.outs[mid] = out
            if out.source is not src:
                if out.source is not None and out in out.source.outs:
                    out.source.outs.remove(out)
                out.source = src
                src.outs.append(out)
                out.want_keyframe = True
                out.track = ai.IdleTrack(transceiver.kind, f"{src.leg.participant}:{src.label}")
            ai.attach_forwarding_sender(transceiver, out.track, src.leg.participant)

    def _activate_outgoing(self, leg: Leg) -> None:
        leg.outs_by_ssrc.clear()
        for out in leg.outs.values():
            out.ssrc, out.rtx_ssrc = ai.sender_ssrcs(out.transceiver)
            out.codecs = ai.negotiated_codecs(out.transceiver)
            out.extensions = ai.negotiated_extensions(out.transceiver)
            leg.outs_by_ssrc[out.ssrc] = out
            leg.outs_by_ssrc[out.rtx_ssrc] = out
            _map_payloads(out)
            if out.source is None:
                out.active = False
                if out.activation is not None:
                    out.activation.cancel()
                    out.activation = None
            elif not out.active and out.activation is None:
                loop = asyncio.get_running_loop()
                out.activation = loop.call_later(ACTIVATION_DELAY, self._activate, out)

    def _activate(self, out: OutStream) -> None:
        """Start forwarding on a newly negotiated m-line (see ACTIVATION_DELAY)."""
        out.activation = None
        leg = out.leg
        if self._closed or self._legs.get(leg.participant) is not leg or out.source is None:
            return
        out.active = True
        if leg.connected:
            self.request_keyframe(out.source, time.monotonic(), force=True)

    def needs_offer(self, participant: str) -> bool:
        """True when the participant's last answer no longer matches the call's tracks."""
        leg = self._legs.get(participant)
        if leg is None:
            return False
        wanted = {t.track_id for t in self._remote_tracks(leg)}
        stale = any(out.active and out.source is None for out in leg.outs.values())
        return stale or set(leg.assignment) != wanted

    def _notify_others(self, participant: str) -> None:
        callback = self._on_renegotiate
        if callback is None:
            return
        for leg in list(self._legs.values()):
            if leg.participant != participant and self.needs_offer(leg.participant):
                try:
                    callback(leg.participant, self.receive_needs(leg.participant))
                except Exception:
                    logger.exception("renegotiate callback failed")

    async def _drop_leg(self, participant: str) -> None:
        leg = self._legs.pop(participant, None)
        if participant in self._order:
            self._order.remove(participant)
        if leg is None:
            return
        for track in list(leg.ingress.values()):
            self._remove_ingress(leg, track)
        leg.ingress.clear()
        for out in leg.outs.values():
            if out.source is not None and out in out.source.outs:
                out.source.outs.remove(out)
            if out.activation is not None:
                out.activation.cancel()
                out.activation = None
            out.source = None
            out.history.clear()
        for other in self._legs.values():
            for track in other.ingress.values():
                track.remb.forget(participant)
        if leg.dtls is not None:
            ai.uninstall_packet_hooks(leg.dtls)
        leg.sender = None
        try:
            await leg.pc.close()
        except Exception:
            logger.exception("closing %s's peer connection failed", participant)
        finally:
            leg.outs.clear()
            leg.outs_by_ssrc.clear()
            leg.ingress_by_ssrc.clear()
            if self._release is not None:
                self._release(participant)


def _map_payloads(out: OutStream) -> None:
    """Match the source's payload types to ours by codec, and each to our RTX type."""
    out.pt_map = {}
    out.rtx_pt = {c.apt: c.payload_type for c in out.codecs if c.name.lower() == "rtx" and c.apt}
    src = out.source
    if src is None:
        return
    ours = [c for c in out.codecs if c.name.lower() != "rtx"]
    for pt, codec in src.codecs.items():
        for mine in ours:
            if (
                mine.name.lower() == codec.name.lower()
                and mine.clock_rate == codec.clock_rate
                and _fmtp_compatible(mine, codec)
            ):
                out.pt_map[pt] = mine.payload_type
                break
    same_ids = src.extensions == out.extensions
    mid_ids = [i for i, uri in out.extensions.items() if uri == MID_URI]
    out.ext_passthrough = same_ids and (not mid_ids or src.mid == out.mid)
    out.mid_patch_id = mid_ids[0] if same_ids and len(mid_ids) == 1 else None
    out.mid_value = out.mid.encode()
    by_uri = {uri: i for i, uri in out.extensions.items()}
    out.ext_map = {i: by_uri[uri] for i, uri in src.extensions.items() if uri in by_uri}


def _fmtp_compatible(a: ai.NegotiatedCodec, b: ai.NegotiatedCodec) -> bool:
    if a.name.lower() != "h264":
        return True
    pa, pb = dict(a.fmtp), dict(b.fmtp)
    return pa.get("packetization-mode", "0") == pb.get("packetization-mode", "0") and (
        pa.get("profile-level-id", "")[:2] == pb.get("profile-level-id", "")[:2]
    )
