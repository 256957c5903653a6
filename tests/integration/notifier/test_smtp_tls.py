"""The SMTP transport over STARTTLS (with login) and implicit TLS, verifying the server's
certificate, against real aiosmtpd servers with a certificate made for the test."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifier.transports import SmtpTransport, TransientDeliveryError
from tests.integration.notifier.notifier_support import SinkHandler, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret",
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535


def mail() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "no-reply@example.com"
    message["To"] = "a@example.com"
    message["Subject"] = "tls"
    message.set_content("over TLS")
    return message


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[SinkHandler, int]]:
    handler, port = SinkHandler(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    yield handler, port
    controller.stop()


def test_starttls_with_login_delivers(
    starttls_server: tuple[SinkHandler, int], certificate: tuple[Path, Path]
) -> None:
    handler, port = starttls_server
    transport = SmtpTransport(
        "127.0.0.1",
        port,
        username="mailer",
        password="s3cret",
        starttls=True,
        ssl_context=client_context(certificate),
    )
    transport.send(mail(), "ev-1")
    transport.close()
    assert handler.count() == 1


def test_a_server_certificate_we_do_not_trust_is_refused(starttls_server: tuple[SinkHandler, int]) -> None:
    _, port = starttls_server
    transport = SmtpTransport("127.0.0.1", port, username="mailer", password="s3cret", starttls=True)
    with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        transport.send(mail(), "ev-1")


def test_wrong_credentials_keep_the_mail_for_a_retry(
    starttls_server: tuple[SinkHandler, int], certificate: tuple[Path, Path]
) -> None:
    _, port = starttls_server
    transport = SmtpTransport(
        "127.0.0.1",
        port,
        username="mailer",
        password="wrong",
        starttls=True,
        ssl_context=client_context(certificate),
    )
    with pytest.raises(TransientDeliveryError, match="login refused"):
        transport.send(mail(), "ev-1")


def test_implicit_tls_delivers(certificate: tuple[Path, Path]) -> None:
    handler, port = SinkHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=server_context(certificate))
    controller.start()
    try:
        transport = SmtpTransport(
            "127.0.0.1", port, implicit_tls=True, ssl_context=client_context(certificate)
        )
        transport.send(mail(), "ev-1")
        transport.send(mail(), "ev-2")
        transport.close()
    finally:
        controller.stop()
    assert handler.count() == 2
    assert transport.connections_opened == 1
