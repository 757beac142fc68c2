"""HTTPS with a configured certificate: Secure cookies (browsers need a secure origin)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tongban.cli import server_ssl_context
from tongban.settings import SettingsError
from web.app import create_app


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_https_with_secure_cookie(
    make_settings: Any, tmp_path: Path, unused_tcp_port: int
) -> None:
    cert, key = self_signed(tmp_path)
    settings = make_settings(tls_cert=cert, tls_key=key)
    assert settings.secure_cookies
    runner = web.AppRunner(create_app(settings, parts=()))
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", unused_tcp_port, ssl_context=server_ssl_context(settings)
    )
    await site.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"https://127.0.0.1:{unused_tcp_port}/api/login",
                json={"username": "zz.a1", "password": "Demo#2026"},
                ssl=False,
            ) as resp,
        ):
            assert resp.status == 200
            cookie = resp.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_unreadable_certificate_is_a_clear_settings_error(
    make_settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    settings = make_settings(tls_cert=tmp_path / "bad.pem", tls_key=tmp_path / "bad.pem")
    with pytest.raises(SettingsError, match="TONGBAN_TLS_CERT"):
        server_ssl_context(settings)
