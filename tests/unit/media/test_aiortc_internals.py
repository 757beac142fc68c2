"""Fails loudly when an aiortc/aioice upgrade moves a private part media relies on."""

from __future__ import annotations

import importlib.metadata

import aioice
import aioice.ice
import aiortc.rtcrtpsender
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpsender import RTCRtpSender
from pylibsrtp._binding import lib as srtp_lib

from media import aiortc_internals as ai

CLASSES = {
    "RTCDtlsTransport": RTCDtlsTransport,
    "RTCRtpSender": RTCRtpSender,
    "aioice.Connection": aioice.Connection,
    "aiortc.rtcrtpsender module": aiortc.rtcrtpsender,
    "aiortc.codecs.vpx.Vp8Encoder": Vp8Encoder,
    "pylibsrtp._binding.lib": srtp_lib,
}


def test_pinned_versions() -> None:
    for name, version in ai.PINNED_VERSIONS.items():
        assert importlib.metadata.version(name) == version, (
            f"{name} is {importlib.metadata.version(name)}, media/aiortc_internals.py was "
            f"written for {version}: re-check every entry of RELIED_ON before moving the pin"
        )
    ai.check_versions()


@pytest.mark.parametrize("owner,attribute", [r for r in ai.RELIED_ON if r[0] in CLASSES])
def test_class_attributes_still_exist(owner: str, attribute: str) -> None:
    assert hasattr(CLASSES[owner], attribute), (
        f"aiortc/aioice upgrade removed {owner}.{attribute}, which media/aiortc_internals.py "
        "relies on"
    )


async def test_instance_attributes_still_exist() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver: RTCRtpTransceiver = pc.addTransceiver("video", direction="sendrecv")
        dtls = transceiver.receiver.transport
        ice: RTCIceTransport = dtls.transport
        objects = {
            "RTCDtlsTransport instance": dtls,
            "RTCIceTransport instance": ice,
            "RTCRtpSender instance": transceiver.sender,
            "RTCRtpTransceiver instance": transceiver,
            "aioice.Connection instance": ice._connection,
            "pylibsrtp.Session instance": pylibsrtp.Session(),
        }
        for owner, attribute in ai.RELIED_ON:
            if owner in objects:
                assert hasattr(objects[owner], attribute), (
                    f"aiortc/aioice upgrade removed {owner}.{attribute}, which "
                    "media/aiortc_internals.py relies on"
                )
        assert isinstance(ice._connection._nominated, dict)
        assert isinstance(ice._connection._local_candidates, list)
    finally:
        await pc.close()


def test_candidate_pair_fields() -> None:
    fields = aioice.ice.CandidatePair.__init__.__code__.co_varnames
    assert "protocol" in fields, "aioice CandidatePair no longer takes a protocol"
    assert hasattr(aioice.ice.CandidatePair, "remote_addr"), (
        "aioice CandidatePair.remote_addr is gone (media sends on the nominated pair)"
    )


def test_no_other_media_module_touches_private_aiortc_parts() -> None:
    import pathlib
    import re

    root = pathlib.Path(ai.__file__).parent
    private = re.compile(
        r"\._(ssrc|rtx_ssrc|tx_srtp|rx_srtp|connection|codecs|headerExtensions|offerDirection|"
        r"nominated|handle_rtp_data|handle_rtcp_data|send_rtcp|send_rtp|stream_id|queue)\b"
    )
    for path in root.glob("*.py"):
        if path.name == "aiortc_internals.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not private.search(line), f"{path.name}:{number} reaches into aiortc: {line}"


def test_pinned_vp8_bitrate_reaches_new_encoders() -> None:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    try:
        ai.pin_vp8_bitrate(1_000_000)
        encoder = aiortc.rtcrtpsender.get_encoder(vp8)  # type: ignore[attr-defined]
        assert isinstance(encoder, Vp8Encoder)
        encoder.target_bitrate = 300_000  # what a REMB would do
        assert encoder.target_bitrate == 1_000_000
    finally:
        ai.pin_vp8_bitrate(None)
    assert aiortc.rtcrtpsender.get_encoder(vp8).target_bitrate == 500_000  # type: ignore[attr-defined]


def srtp_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    key = bytes(range(30))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


def test_fast_srtp_is_byte_identical_to_pylibsrtp() -> None:
    rtp = bytes([0x80, 96, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4]) + bytes(range(200))
    rtcp = bytes([0x81, 201, 0, 7, 1, 2, 3, 4]) + bytes(24)
    tx_a, rx_a = srtp_pair()
    tx_b, rx_b = srtp_pair()
    fast_tx, fast_rx = ai.FastSrtp(tx_b), ai.FastSrtp(rx_b)
    assert not isinstance(fast_tx, ai.PublicSrtp)
    protected = tx_a.protect(rtp)
    assert fast_tx.protect(rtp) == protected
    assert fast_rx.unprotect(protected) == rtp == rx_a.unprotect(protected)
    protected_rtcp = tx_a.protect_rtcp(rtcp)
    assert fast_tx.protect_rtcp(rtcp) == protected_rtcp
    assert fast_rx.unprotect_rtcp(protected_rtcp) == rtcp
    with pytest.raises(pylibsrtp.Error):
        fast_rx.unprotect(protected)  # replay
    with pytest.raises(ValueError):
        fast_tx.protect(bytes(1500))
