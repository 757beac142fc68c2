"""Fails loudly when an aiortc/aioice upgrade moves a private part media relies on."""

from __future__ import annotations

import importlib.metadata

import aioice
import aioice.ice
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpsender import RTCRtpSender

from media import aiortc_internals as ai

CLASSES = {
    "RTCDtlsTransport": RTCDtlsTransport,
    "RTCRtpSender": RTCRtpSender,
    "aioice.Connection": aioice.Connection,
    "aiortc.rtcrtpsender module": aiortc.rtcrtpsender,
    "aiortc.codecs.vpx.Vp8Encoder": Vp8Encoder,
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
