"""ocr_svc settings: defaults, environment names, derived values."""

from __future__ import annotations

import pytest

from ocr_svc.settings import OcrSettings
from ocrmesh.platform.settings import load_settings


def test_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OCR_PORT", "OCR_ENGINE", "OCR_WORKERS", "OCR_MAX_IMAGE_BYTES", "OCR_MAX_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    settings = OcrSettings()
    assert settings.ocr_port == 50052
    assert settings.ocr_engine == "rapidocr"
    assert settings.ocr_workers == 4
    assert settings.ocr_max_image_bytes == 10 * 1024 * 1024
    assert settings.ocr_max_pixels == 40_000_000
    assert settings.topology.queue == "email_notification"


def test_engine_threads_share_the_cores_between_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert OcrSettings(ocr_workers=2).engine_threads() == 4
    assert OcrSettings(ocr_workers=16).engine_threads() == 1
    assert OcrSettings(ocr_workers=2, ocr_engine_threads=3).engine_threads() == 3


def test_engine_calls_fill_the_cores_and_give_each_worker_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ocr_svc.settings.os.cpu_count", lambda: 8)
    # Default threads: one call per core, an image alone may use all 8.
    assert OcrSettings(ocr_workers=2).engine_calls() == 2
    assert OcrSettings(ocr_workers=8).engine_calls() == 8
    assert OcrSettings(ocr_workers=2, ocr_engine_threads=1).engine_calls() == 8
    assert OcrSettings(ocr_workers=1, ocr_engine_threads=2).engine_calls() == 4
    # More workers than cores: still one call per worker.
    assert OcrSettings(ocr_workers=16).engine_calls() == 16
    # Several processes share the cores.
    assert OcrSettings(ocr_processes=4, ocr_workers=1, ocr_engine_threads=1).engine_calls() == 2


def test_an_image_alone_may_detect_on_the_process_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ocr_svc.settings.os.cpu_count", lambda: 8)
    assert OcrSettings(ocr_workers=8).spread_threads() == 8
    assert OcrSettings(ocr_workers=16).spread_threads() == 8
    # Several processes share the cores.
    assert OcrSettings(ocr_processes=4, ocr_workers=1, ocr_engine_threads=1).spread_threads() == 2
    # Never fewer than one call's own threads.
    assert OcrSettings(ocr_processes=8, ocr_workers=1, ocr_engine_threads=3).spread_threads() == 3


def test_limits_may_be_written_in_scientific_notation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCR_MAX_PIXELS", "40e6")
    monkeypatch.setenv("OCR_MAX_IMAGE_BYTES", "5_000_000")
    settings = load_settings(OcrSettings)
    assert settings.ocr_max_pixels == 40_000_000
    assert settings.ocr_max_image_bytes == 5_000_000
    monkeypatch.setenv("OCR_MAX_PIXELS", "1.5")
    with pytest.raises(SystemExit):
        load_settings(OcrSettings)


def test_the_grpc_limit_leaves_room_above_the_image_limit() -> None:
    settings = OcrSettings(ocr_max_image_bytes=1000)
    assert settings.max_receive_message_bytes() > 1000


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCR_ENGINE", "keras")
    monkeypatch.setenv("OCR_WORKERS", "3")
    monkeypatch.setenv("EMAIL_QUEUE", "other_queue")
    monkeypatch.setenv("EMAIL_RETRY_DELAYS", "1,2")
    monkeypatch.setenv("KERAS_OCR_CACHE_DIR", "/srv/weights")
    settings = load_settings(OcrSettings)
    assert settings.ocr_engine == "keras"
    assert settings.ocr_workers == 3
    assert settings.topology.queue == "other_queue"
    assert settings.topology.retry_delays == (1.0, 2.0)
    assert str(settings.keras_ocr_cache_dir) == "/srv/weights"


@pytest.mark.parametrize(
    ("name", "value"),
    [("OCR_ENGINE", "tesseract"), ("OCR_WORKERS", "0"), ("OCR_PORT", "x"), ("OCR_RECOGNIZER", "keras")],
)
def test_a_bad_value_stops_start_up(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(OcrSettings)
    assert stopped.value.code == 2


def test_the_default_engine_is_built_to_detect_an_image_alone_on_those_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ocr_svc.engines import create_engine
    from ocr_svc.engines.rapid import RapidOcrEngine

    monkeypatch.setattr("ocr_svc.settings.os.cpu_count", lambda: 2)
    engine = create_engine(OcrSettings(ocr_workers=2))
    assert isinstance(engine, RapidOcrEngine)
    assert (engine.threads, engine.spread_threads) == (1, 2)


def test_the_tesseract_recognizer_reads_what_the_rapidocr_engine_detects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ocr_svc.engines import create_engine
    from ocr_svc.engines.tesseract_lines import TesseractLineEngine

    monkeypatch.setattr("ocr_svc.settings.os.cpu_count", lambda: 2)
    monkeypatch.setenv("OCR_RECOGNIZER", "tesseract")
    monkeypatch.setenv("OCR_TESSDATA_DIR", "/srv/tessdata")
    settings = load_settings(OcrSettings)
    engine = create_engine(settings)
    assert isinstance(engine, TesseractLineEngine)
    assert (engine.threads, engine.spread_threads) == (1, 2)
    assert str(settings.ocr_tessdata_dir) == "/srv/tessdata"
    # Only over rapidocr's detection: keras reads its own words.
    monkeypatch.setenv("OCR_ENGINE", "keras")
    with pytest.raises(SystemExit) as stopped:
        load_settings(OcrSettings)
    assert stopped.value.code == 2


def test_tesseracts_layout_finds_lines_only_for_the_rapidocr_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(OcrSettings).ocr_detector == "auto"
    monkeypatch.setenv("OCR_DETECTOR", "tesseract")
    assert load_settings(OcrSettings).ocr_detector == "tesseract"
    monkeypatch.setenv("OCR_ENGINE", "keras")
    monkeypatch.setenv("OCR_RECOGNIZER", "ppocr")
    with pytest.raises(SystemExit) as stopped:
        load_settings(OcrSettings)
    assert stopped.value.code == 2
