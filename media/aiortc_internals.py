"""Every touch of aiortc's and aioice's private parts, in one place.

aiortc's maintainers declined a "forward, don't decode" switch (aiortc issues 449, 1176), so
the forwarder leans on internals of aiortc 1.16.0 and aioice 0.13.0. Both are pinned in
pyproject.toml; ``tests/unit/media/test_aiortc_internals.py`` fails loudly, naming the
attribute, when an upgrade moves one of them. Nothing outside this module may reach into
an aiortc/aioice object's underscored attributes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aioice
import aioice.ice
import aiortc.rtcrtpsender
import pylibsrtp
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as srtp_lib

PINNED_VERSIONS = {"aiortc": "1.16.0", "aioice": "0.13.0"}

# (object description, attribute) pairs this module relies on; checked by the unit test.
RELIED_ON: tuple[tuple[str, str], ...] = (
    ("RTCDtlsTransport", "_handle_rtp_data"),
    ("RTCDtlsTransport", "_handle_rtcp_data"),
    ("RTCDtlsTransport", "_send_rtp"),
    ("RTCDtlsTransport instance", "_tx_srtp"),
    ("RTCDtlsTransport instance", "_rx_srtp"),
    ("RTCDtlsTransport instance", "_state"),
    ("RTCIceTransport instance", "_connection"),
    ("RTCRtpSender instance", "_ssrc"),
    ("RTCRtpSender instance", "_rtx_ssrc"),
    ("RTCRtpSender instance", "_stream_id"),
    ("RTCRtpSender", "_send_rtcp"),
    ("RTCRtpTransceiver instance", "_codecs"),
    ("RTCRtpTransceiver instance", "_headerExtensions"),
    ("RTCRtpTransceiver instance", "_offerDirection"),
    ("aioice.Connection instance", "_nominated"),
    ("aioice.Connection instance", "_local_candidates"),
    ("aioice.Connection instance", "_local_candidates_start"),
    ("aioice.Connection instance", "_local_candidates_end"),
    ("aioice.Connection instance", "_components"),
    ("aioice.Connection instance", "_transport_policy"),
    ("aioice.Connection instance", "_queue"),
    ("aioice.Connection instance", "_protocols"),
    ("aioice.ice.StunProtocol", "datagram_received"),
    ("aioice.Connection", "get_component_candidates"),
    ("aioice.Connection", "data_received"),
    ("aioice.ice.CandidatePair", "protocol"),
    ("aioice.ice.CandidatePair", "remote_addr"),
    ("aiortc.rtcrtpsender module", "get_encoder"),
    ("aiortc.codecs.vpx.Vp8Encoder", "target_bitrate"),
    ("pylibsrtp.Session instance", "_srtp"),
    ("pylibsrtp.Session instance", "_cdata"),
    ("pylibsrtp.Session instance", "_buffer"),
    ("pylibsrtp._binding.lib", "srtp_protect"),
    ("pylibsrtp._binding.lib", "srtp_unprotect"),
    ("pylibsrtp._binding.lib", "srtp_protect_rtcp"),
    ("pylibsrtp._binding.lib", "srtp_unprotect_rtcp"),
)


def installed_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in PINNED_VERSIONS}


def check_versions() -> None:
    """Refuse to run against an aiortc/aioice this module was not written for."""
    found = installed_versions()
    if found != PINNED_VERSIONS:
        raise RuntimeError(
            f"media.aiortc_internals was written for {PINNED_VERSIONS}, found {found}: "
            "re-check every attribute in RELIED_ON before changing the pins"
        )


# --------------------------------------------------------------------------- public-API glue


def ice_server(entry: Mapping[str, Any]) -> RTCIceServer:
    """An RTCIceServer from a browser-style dict ``{urls, username?, credential?}``."""
    urls = entry.get("urls")
    if not isinstance(urls, str | list) or not urls:
        raise ValueError("ICE server entry needs 'urls'")
    return RTCIceServer(
        urls=urls, username=entry.get("username"), credential=entry.get("credential")
    )


def new_peer_connection(ice_servers: Sequence[Mapping[str, Any]]) -> RTCPeerConnection:
    """Explicit configuration always: aiortc's default points at a public STUN server."""
    config = RTCConfiguration(
        iceServers=[ice_server(s) for s in ice_servers],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
    return RTCPeerConnection(configuration=config)


def parse_sdp(text: str) -> aiortc_sdp.SessionDescription:
    """aiortc's SDP parser; any exception it raises on garbage becomes ValueError."""
    try:
        return aiortc_sdp.SessionDescription.parse(text)
    except Exception as err:  # aiortc raises IndexError/AttributeError/KeyError on bad SDP
        raise ValueError(f"unparsable SDP: {type(err).__name__}: {err}") from err


@dataclass(frozen=True, slots=True)
class RemoteMedia:
    """What an offered m-line says about the participant's sending side."""

    mid: str
    kind: str
    direction: str  # as offered, from the participant's point of view
    ssrcs: tuple[int, ...]
    rtx: dict[int, int]  # rtx ssrc -> media ssrc (ssrc-group FID)
    codecs: tuple[tuple[int, str, int, int | None, int | None], ...]  # pt,name,rate,ch,apt
    extensions: dict[int, str]  # id -> uri
    secure: bool  # has DTLS fingerprints and ICE credentials (aiortc asserts on neither)


def remote_media(description: aiortc_sdp.SessionDescription) -> list[RemoteMedia]:
    out = []
    for media in description.media:
        if media.kind not in ("audio", "video"):
            continue
        rtx: dict[int, int] = {}
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) == 2:
                rtx[int(group.items[1])] = int(group.items[0])
        codecs = []
        for c in media.rtp.codecs:
            apt = c.parameters.get("apt")
            codecs.append(
                (
                    int(c.payloadType or 0),
                    c.mimeType.split("/")[-1],
                    int(c.clockRate),
                    c.channels,
                    apt if isinstance(apt, int) else None,
                )
            )
        out.append(
            RemoteMedia(
                mid=str(media.rtp.muxId),
                kind=media.kind,
                direction=media.direction or "sendrecv",
                ssrcs=tuple(int(s.ssrc) for s in media.ssrc),
                rtx=rtx,
                codecs=tuple(codecs),
                extensions={int(x.id): x.uri for x in media.rtp.headerExtensions},
                secure=bool(
                    media.dtls is not None
                    and media.dtls.fingerprints
                    and media.ice is not None
                    and media.ice.usernameFragment
                    and media.ice.password
                ),
            )
        )
    return out


def parse_candidate(text: str, mid: str | None, index: int | None) -> RTCIceCandidate:
    """A browser's ``candidate:...`` line as aiortc's RTCIceCandidate; ValueError if bad."""
    body = text.strip()
    if body.startswith("candidate:"):
        body = body[len("candidate:") :]
    try:
        candidate = aiortc_sdp.candidate_from_sdp(body)
    except Exception as err:  # IndexError/ValueError on garbage
        raise ValueError(f"unparsable candidate: {type(err).__name__}") from err
    if candidate.protocol.lower() not in ("udp", "tcp") or not 0 < candidate.port < 65536:
        raise ValueError("candidate protocol or port out of range")
    candidate.sdpMid = mid
    candidate.sdpMLineIndex = index
    return candidate


class IdleTrack(MediaStreamTrack):
    """A track that never yields: it only gives a sender its SSRCs and payload types.

    The forwarder writes that sender's packets itself; the sender's own encode loop waits
    on this track forever (no timer, no CPU) until the sender is stopped.
    """

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id

    async def recv(self) -> Any:
        await asyncio.get_running_loop().create_future()  # cancelled by sender.stop()


# --------------------------------------------------------------------------- private parts


def bundle_transport(pc: RTCPeerConnection) -> RTCDtlsTransport:
    """The one DTLS transport of a MAX_BUNDLE peer connection."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        raise ValueError("peer connection has no transceivers yet")
    transport: RTCDtlsTransport = transceivers[0].receiver.transport
    return transport


def restrict_host_candidates(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Gather host candidates on exactly ``addresses`` (loopback included if listed).

    aioice gathers on every interface but 127.0.0.1; this replaces, per ICE connection and
    before it gathers, its ``gather_candidates`` with one bound to the given addresses.
    STUN/TURN candidates are still gathered from the configured servers.
    """
    chosen = list(addresses)
    for transceiver in pc.getTransceivers():
        conn = transceiver.receiver.transport.transport._connection
        if getattr(conn, "_tongban_restricted", False) or conn._local_candidates_start:
            continue
        setattr(conn, "gather_candidates", _restricted_gather(conn, chosen))  # noqa: B010
        setattr(conn, "_tongban_restricted", True)  # noqa: B010


def _restricted_gather(conn: aioice.Connection, addresses: list[str]) -> Callable[[], Any]:
    async def gather_candidates() -> None:
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        use = addresses if conn._transport_policy == aioice.TransportPolicy.ALL else []
        for component in sorted(conn._components):
            conn._local_candidates += await conn.get_component_candidates(
                component=component, addresses=use
            )
        conn._local_candidates_end = True

    return gather_candidates


def bound_receive_queue(dtls: RTCDtlsTransport, limit: int, on_drop: Callable[[], None]) -> None:
    """aioice queues every datagram unboundedly; drop (and count) beyond ``limit``."""
    conn = dtls.transport._connection
    if getattr(conn, "_tongban_bounded", False):
        return
    queue = conn._queue

    def data_received(data: bytes, component: int) -> None:
        if queue.qsize() >= limit:
            on_drop()
            return
        queue.put_nowait((data, component))

    setattr(conn, "data_received", data_received)  # noqa: B010
    setattr(conn, "_tongban_bounded", True)  # noqa: B010


def install_packet_hooks(
    dtls: RTCDtlsTransport,
    on_rtp: Callable[[bytes], None],
    on_rtcp: Callable[[bytes], None],
) -> None:
    """Take over decrypted RTP/RTCP of a transport (bypassing aiortc's receivers/senders)."""

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data)

    async def handle_rtcp(data: bytes) -> None:
        on_rtcp(data)

    setattr(dtls, "_handle_rtp_data", handle_rtp)  # noqa: B010
    setattr(dtls, "_handle_rtcp_data", handle_rtcp)  # noqa: B010


class FastSrtp:
    """pylibsrtp's ``Session.protect``/``unprotect`` minus its per-call overhead.

    Same libsrtp calls on the same session and buffer, without the per-packet ``ffi.new``,
    type check and extra Python frames (about a third of the SRTP cost per packet). Holds
    the session so its libsrtp context stays alive. Raises ``pylibsrtp.Error`` like it.
    """

    __slots__ = ("_buffer", "_cdata", "_ctx", "_len", "_room", "session")

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session
        self._ctx = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._room = len(session._cdata)
        self._len = srtp_ffi.new("int *")

    def _run(self, data: bytes, func: Any, trailer: int) -> bytes:
        n = len(data)
        if n > self._room - trailer:
            raise ValueError("packet is too long")
        self._buffer[0:n] = data
        length = self._len
        length[0] = n
        rc = func(self._ctx, self._cdata, length)
        if rc:
            raise pylibsrtp.Error(f"libsrtp error {rc}")
        result: bytes = self._buffer[0 : length[0]]
        return result

    def protect(self, data: bytes) -> bytes:
        # _run inlined: this runs once per forwarded packet.
        n = len(data)
        if n > self._room - 144:  # SRTP_MAX_TRAILER_LEN
            raise ValueError("packet is too long")
        self._buffer[0:n] = data
        length = self._len
        length[0] = n
        rc = _srtp_protect(self._ctx, self._cdata, length)
        if rc:
            raise pylibsrtp.Error(f"libsrtp error {rc}")
        result: bytes = self._buffer[0 : length[0]]
        return result

    def protect_rtcp(self, data: bytes) -> bytes:
        return self._run(data, srtp_lib.srtp_protect_rtcp, 148)  # SRTCP trailer

    def unprotect(self, data: bytes) -> bytes:
        n = len(data)
        if n > self._room:
            raise ValueError("packet is too long")
        self._buffer[0:n] = data
        length = self._len
        length[0] = n
        rc = _srtp_unprotect(self._ctx, self._cdata, length)
        if rc:
            raise pylibsrtp.Error(f"libsrtp error {rc}")
        result: bytes = self._buffer[0 : length[0]]
        return result

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._run(data, srtp_lib.srtp_unprotect_rtcp, 0)


_srtp_protect = srtp_lib.srtp_protect
_srtp_unprotect = srtp_lib.srtp_unprotect


class PublicSrtp(FastSrtp):
    """Fallback when a pylibsrtp upgrade moved FastSrtp's internals: its public methods.

    (pylibsrtp is not pinned by the project; the unit test names what moved.)
    """

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session

    def protect(self, data: bytes) -> bytes:
        return bytes(self.session.protect(data))

    def protect_rtcp(self, data: bytes) -> bytes:
        return bytes(self.session.protect_rtcp(data))

    def unprotect(self, data: bytes) -> bytes:
        return bytes(self.session.unprotect(data))

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return bytes(self.session.unprotect_rtcp(data))


def _fast(session: pylibsrtp.Session | None, cached: FastSrtp | None) -> FastSrtp | None:
    if session is None:
        return None
    if cached is not None and cached.session is session:
        return cached
    try:
        return FastSrtp(session)
    except (AttributeError, TypeError, IndexError):
        return PublicSrtp(session)


def install_fast_receive(
    dtls: RTCDtlsTransport,
    on_rtp: Callable[[bytes], None],
    on_rtcp: Callable[[bytes], None],
    on_error: Callable[[BaseException], None],
) -> None:
    """Decrypt SRTP/SRTCP in the UDP socket's ``datagram_received`` and hand it on at once.

    aioice puts every datagram in an ``asyncio.Queue`` that aiortc's transport task drains,
    one task wake-up and several awaits per packet (most of the forwarder's CPU). Once the
    transport is connected and has its SRTP keys, this takes SRTP (first byte 128-191, RFC
    7983) off the socket callback of every local candidate's protocol; STUN and DTLS still go
    the normal way (the original ``datagram_received``), and so does everything before the
    keys exist or after the transport left ``connected``. Call it when the transport
    reaches ``connected`` (the protocols exist then); idempotent.
    """
    connected = DtlsState.CONNECTED
    srtp_error = pylibsrtp.Error
    fast: list[FastSrtp | None] = [None]  # the receive session, wrapped once

    for protocol in dtls.transport._connection._protocols:
        if "datagram_received" in protocol.__dict__:
            continue
        original = protocol.datagram_received

        def handle(
            data: bytes, addr: tuple[Any, ...], original: Callable[..., None] = original
        ) -> None:
            if len(data) < 2:
                return  # never STUN, DTLS or SRTP (and aiortc's reader fails on b"")
            rx = fast[0]
            if rx is None or rx.session is not dtls._rx_srtp:
                rx = fast[0] = _fast(dtls._rx_srtp, None)
            if 127 < data[0] < 192 and rx is not None and dtls._state is connected:
                try:
                    if 191 < data[1] < 224:  # RTCP (RFC 5761)
                        on_rtcp(rx.unprotect_rtcp(data))
                    else:
                        on_rtp(rx.unprotect(data))
                except srtp_error:
                    pass  # replayed or forged: aiortc drops these too
                except Exception as err:  # never let one packet break the socket callback
                    on_error(err)
                return
            original(data, addr)

        setattr(protocol, "datagram_received", handle)  # noqa: B010


def receive_path(dtls: RTCDtlsTransport) -> tuple[bool, int]:
    """(fast receive installed on every protocol, datagrams waiting in aioice's queue)."""
    conn = dtls.transport._connection
    protocols = conn._protocols
    hooked = bool(protocols) and all("datagram_received" in p.__dict__ for p in protocols)
    return hooked, conn._queue.qsize()


def uninstall_packet_hooks(dtls: RTCDtlsTransport) -> None:
    """Drop the hooks so the closures (and the call they reference) can be collected."""
    for name in ("_handle_rtp_data", "_handle_rtcp_data"):
        dtls.__dict__.pop(name, None)
    for protocol in dtls.transport._connection._protocols:
        protocol.__dict__.pop("datagram_received", None)


class LegSender:
    """Sends already-rewritten plaintext RTP/RTCP on one transport's nominated ICE pair.

    Synchronous on purpose: SRTP protect and ``sendto`` never block, and skipping aiortc's
    ``await`` chain per packet is where most of the per-packet cost went. The socket
    transport and address of the nominated pair are looked up once (aioice nominates one
    pair per component and never changes it) and dropped when that socket closes.
    """

    __slots__ = ("_dtls", "_route", "_tx")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._route: tuple[Any, tuple[str, int]] | None = None
        self._tx: FastSrtp | None = None

    @property
    def connected(self) -> bool:
        return self._dtls._state is DtlsState.CONNECTED and self._dtls._tx_srtp is not None

    def _find_route(self) -> tuple[Any, tuple[str, int]] | None:
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return None
        self._route = (pair.protocol.transport, pair.remote_addr)
        return self._route

    def _session(self) -> FastSrtp | None:
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return None
        tx = self._tx
        if tx is None or tx.session is not dtls._tx_srtp:
            tx = self._tx = _fast(dtls._tx_srtp, None)
        return tx

    def _sendto(self, data: bytes) -> bool:
        route = self._route or self._find_route()
        if route is None:
            return False
        transport, addr = route
        if transport.is_closing():
            self._route = None
            return False
        transport.sendto(data, addr)
        return True

    def send_rtp(self, packet: bytes) -> bool:
        # _session and _sendto inlined for the common case: once per forwarded packet.
        dtls = self._dtls
        tx = self._tx
        if dtls._state is not DtlsState.CONNECTED:
            return False
        if tx is None or tx.session is not dtls._tx_srtp:
            tx = self._session()
            if tx is None:
                return False
        route = self._route or self._find_route()
        if route is None:
            return False
        transport, addr = route
        if transport.is_closing():
            self._route = None
            return False
        transport.sendto(tx.protect(packet), addr)
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        tx = self._session()
        if tx is None:
            return False
        return self._sendto(tx.protect_rtcp(packet))


def sender_ssrcs(transceiver: RTCRtpTransceiver) -> tuple[int, int]:
    return int(transceiver.sender._ssrc), int(transceiver.sender._rtx_ssrc)


def offered_direction(transceiver: RTCRtpTransceiver) -> str | None:
    """The remote offer's direction seen from the server (``recvonly`` = we only receive)."""
    direction: str | None = transceiver._offerDirection
    return direction


@dataclass(frozen=True, slots=True)
class NegotiatedCodec:
    payload_type: int
    name: str  # "VP8", "H264", "opus", "rtx"...
    clock_rate: int
    channels: int | None
    apt: int | None  # for rtx: the payload type it repairs
    fmtp: tuple[tuple[str, str], ...]


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[NegotiatedCodec]:
    out = []
    for c in transceiver._codecs:
        apt = c.parameters.get("apt")
        out.append(
            NegotiatedCodec(
                payload_type=int(c.payloadType or 0),
                name=c.mimeType.split("/")[-1],
                clock_rate=int(c.clockRate),
                channels=c.channels,
                apt=apt if isinstance(apt, int) else None,
                fmtp=tuple(sorted((str(k), str(v)) for k, v in c.parameters.items())),
            )
        )
    return out


def negotiated_extensions(transceiver: RTCRtpTransceiver) -> dict[int, str]:
    return {int(x.id): x.uri for x in transceiver._headerExtensions}


def attach_forwarding_sender(
    transceiver: RTCRtpTransceiver, track: IdleTrack, stream_id: str
) -> None:
    """Make an m-line send: an idle track, a stream id naming the source, own RTCP muted."""
    sender = transceiver.sender
    if sender.track is not track:
        sender.replaceTrack(track)
    sender._stream_id = stream_id
    transceiver.direction = "sendrecv"
    if "_send_rtcp" not in sender.__dict__:
        # Its sender reports carry a zero NTP time and would confuse the receiver's
        # clock; the forwarder sends translated reports of the real source instead.
        async def muted(packets: Any) -> None:
            return None

        setattr(sender, "_send_rtcp", muted)  # noqa: B010


def on_state_connected(dtls: RTCDtlsTransport, callback: Callable[[], None]) -> None:
    """Call ``callback`` once when the transport reaches ``connected`` (now if it is)."""
    if dtls.state == "connected":
        callback()
        return

    def changed() -> None:
        if dtls.state == "connected":
            dtls.remove_listener("statechange", changed)
            callback()

    dtls.on("statechange", changed)


def inject_rtp_loss(
    pc: RTCPeerConnection,
    *,
    outgoing: Callable[[bytes], bool] | None = None,
    incoming: Callable[[bytes], bool] | None = None,
) -> None:
    """Fault injection for tests: drop plaintext RTP a client sends or receives.

    ``outgoing``/``incoming`` see each RTP packet (never RTCP) and return True to drop it.
    """
    dtls = bundle_transport(pc)
    if outgoing is not None:
        drop_out = outgoing
        send = dtls._send_rtp

        async def send_rtp(data: bytes) -> None:
            if len(data) > 1 and not 192 <= data[1] <= 223 and drop_out(data):
                return
            await send(data)

        setattr(dtls, "_send_rtp", send_rtp)  # noqa: B010
    if incoming is not None:
        drop_in = incoming
        handle = dtls._handle_rtp_data

        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            if drop_in(data):
                return
            await handle(data, arrival_time_ms)

        setattr(dtls, "_handle_rtp_data", handle_rtp)  # noqa: B010


# --------------------------------------------------------------------------- test-only hooks


class _FixedBitrateVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder held at one target bitrate (REMB no longer moves it)."""

    fixed_bitrate = 1_000_000

    @property
    def target_bitrate(self) -> int:
        return self.fixed_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        return None


_original_get_encoder = getattr(aiortc.rtcrtpsender, "get_encoder")  # noqa: B009


def pin_vp8_bitrate(bitrate: int | None) -> None:
    """Test/benchmark only: every VP8 encoder aiortc creates in this process from now on
    targets ``bitrate`` bits/s (``None`` restores aiortc's own REMB-driven behaviour).

    aiortc starts VP8 at 500 kbit/s and follows the receiver's REMB between 250 kbit/s and
    1.5 Mbit/s; the benchmark needs the ~1 Mbit/s of a real camera, steadily. Never call this
    in the server: it patches ``aiortc.rtcrtpsender.get_encoder`` process-wide.
    """
    if bitrate is None:
        setattr(aiortc.rtcrtpsender, "get_encoder", _original_get_encoder)  # noqa: B010
        return
    _FixedBitrateVp8Encoder.fixed_bitrate = int(bitrate)

    def get_encoder(codec: Any) -> Any:
        if str(codec.mimeType).lower() == "video/vp8":
            return _FixedBitrateVp8Encoder()
        return _original_get_encoder(codec)

    setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)  # noqa: B010
