"""Image and PDF sniffing for uploads, and the gateway's settings from the environment."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings
from gateway.uploads import sniff_image_type


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"BM\x36\x00\x0c\x00\x00\x00", "image/bmp"),
        (b"GIF89a\x01\x00", None),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "application/pdf"),
        (b"%PDF-2.0\n", "application/pdf"),
        # Junk before the header: readers may tolerate it, the gateway does not send it on.
        (b"\n%PDF-1.4\n", None),
        (b"%!PS-Adobe-3.0", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"hello, world", None),
        (b"", None),
    ],
)
def test_images_and_pdfs_are_recognised_by_their_leading_bytes(head: bytes, media_type: str | None) -> None:
    assert sniff_image_type(head) == media_type


def test_defaults_match_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_PORT", "AUTH_ADDR", "OCR_ADDR", "GATEWAY_MAX_UPLOAD_BYTES", "GATEWAY_CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    settings = GatewaySettings()
    assert settings.gateway_port == 8000
    assert settings.auth_addr == "127.0.0.1:50051"
    assert settings.ocr_addr == "127.0.0.1:50052"
    assert settings.gateway_max_upload_bytes == 10 * 1024 * 1024
    assert settings.gateway_cors_origins == ()


def test_cors_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "http://localhost:3000, https://app.example.com,")
    assert GatewaySettings().gateway_cors_origins == ("http://localhost:3000", "https://app.example.com")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_PORT", "0"),
        ("GATEWAY_MAX_UPLOAD_BYTES", "-5"),
        ("GRPC_TIMEOUT_SECONDS", "0"),
        ("TOKEN_ISSUER", ""),
    ],
)
def test_nonsense_values_are_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name.lower()):
        GatewaySettings()
