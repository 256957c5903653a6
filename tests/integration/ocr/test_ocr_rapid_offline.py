"""The default engine works with no network: its models come from the rapidocr wheel and
nothing (model, dictionary, font) is fetched, even on a fresh engine's first call."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest

from ocr_svc.engines import warm_up
from ocr_svc.engines.rapid import RapidOcrEngine
from tests.support.images import render_text_pil

pytestmark = pytest.mark.integration


def test_a_fresh_rapidocr_engine_loads_and_reads_without_any_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from rapidocr.utils import download_file

    attempts: list[str] = []

    def no_download(cls: Any, url: str, logger: Any) -> None:
        attempts.append(url)
        raise AssertionError(f"rapidocr tried to download {url}")

    def no_connection(*args: Any, **kwargs: Any) -> None:
        attempts.append(repr(args))
        raise OSError("network disabled by the test")

    monkeypatch.setattr(download_file.DownloadFile, "_make_http_request", classmethod(no_download))
    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: no_connection(address))

    engine = RapidOcrEngine(threads=1)
    warm_up(engine)
    pixels = np.asarray(render_text_pil(["Offline and fine"], size=30).convert("RGB"))
    regions = engine.detect(pixels)
    lines = [engine.read(pixels, region) for region in regions]
    assert [line.text for line in lines if line] == ["Offline and fine"]
    assert attempts == []
