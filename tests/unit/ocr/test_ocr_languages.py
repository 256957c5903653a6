"""Language codes (the shared syntax), the routing table (which engine reads which language,
what is listed and what refused) and the pipeline reading lines the way a route says."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.images import render_text_image
from ocr_svc.engines.base import EngineUnavailable, RecognizedLine, RgbImage, TextRegion
from ocr_svc.engines.tesseract_reader import installed_models
from ocr_svc.images import ImageLimits
from ocr_svc.languages import TESSERACT_ENGINE, LanguageRouter, Route, UnsupportedLanguage
from ocr_svc.pipeline import Completed, LineRecognized, OcrPipeline, Started
from ocrmesh.rules.languages import InvalidLanguages, normalise_language_codes, parse_language_list
from tests.unit.ocr.scripted_engine import BatchingScriptedEngine, ScriptedEngine


class MultilingualEngine(BatchingScriptedEngine):
    """A batching scripted engine with Tesseract models "installed": a line read in a
    language set is its scripted text tagged with the set; lines found by "Tesseract's
    layout" are counted."""

    name = "multi"

    def __init__(self, lines: list[str | None], models: set[str]) -> None:
        super().__init__(lines)
        self.models = frozenset(models)
        self.read_in: list[tuple[str, str | None]] = []
        self.layout_calls = 0
        self.joined_calls = 0

    def tesseract_models(self) -> frozenset[str]:
        return self.models

    def layout_available(self) -> bool:
        return "eng" in self.models

    def detect_by_layout(self, image: RgbImage, *, join_glyphs: bool = False) -> list[TextRegion]:
        self.layout_calls += 1
        self.joined_calls += join_glyphs
        return self.detect(image)

    def read_batch_in(
        self,
        image: RgbImage,
        regions: Sequence[TextRegion],
        languages: str,
        retry_with: str | None = None,
    ) -> list[RecognizedLine | None]:
        self.read_in.append((languages, retry_with))
        return [
            None if line is None else RecognizedLine(f"{line.text} [{languages}]", line.confidence, line.box)
            for line in self.read_batch(image, regions)
        ]


@pytest.mark.parametrize(
    ("text", "codes"),
    [("", ()), ("  ", ()), ("vi", ("vi",)), ("vi,en", ("vi", "en")), (" VI , en ,vi", ("vi", "en"))],
)
def test_a_language_list_is_parsed_into_lower_case_codes_without_repeats(
    text: str, codes: tuple[str, ...]
) -> None:
    assert parse_language_list(text) == codes


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("vie", "'vie' is not an ISO 639-1 language code"),
        ("v1", "not an ISO 639-1"),
        ("vi,", "not an ISO 639-1"),
        ("vi en", "not an ISO 639-1"),
        ("é1", "not an ISO 639-1"),
        ("en,vi,de,fr,ko,es", "at most 5 languages"),
        ("en," * 30, "longer than 64 characters"),
    ],
)
def test_a_malformed_language_list_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(InvalidLanguages, match=says):
        parse_language_list(text)


def test_repeats_do_not_count_against_the_limit_and_a_long_code_is_shown_shortened() -> None:
    assert normalise_language_codes(["en"] * 20) == ("en",)
    with pytest.raises(InvalidLanguages) as refused:
        normalise_language_codes(["x" * 1000])
    assert len(str(refused.value)) < 100


def test_an_engine_without_tesseract_reads_english_only_with_its_own_recogniser() -> None:
    router = LanguageRouter(ScriptedEngine(["a"]))
    assert [(item.language.code, item.engine) for item in router.readable()] == [("en", "scripted")]
    assert router.route([]) == Route(codes=("en",), engine="scripted")
    with pytest.raises(UnsupportedLanguage) as refused:
        router.route(["vi"])
    assert str(refused.value) == "language 'vi' is not read here; this deployment reads: en"


def test_installed_models_are_listed_with_tesseract_and_english_keeps_the_engines_own() -> None:
    router = LanguageRouter(MultilingualEngine(["a"], {"eng", "vie", "kor", "osd", "chi_sim"}))
    assert [(item.language.code, item.language.name, item.engine) for item in router.readable()] == [
        ("en", "English", "multi"),
        ("ko", "Korean", TESSERACT_ENGINE),
        ("vi", "Vietnamese", TESSERACT_ENGINE),
    ]
    assert router.route(["en"]) == Route(codes=("en",), engine="multi", by_layout=True)
    assert router.route(["vi"]) == Route(
        codes=("vi",), engine=TESSERACT_ENGINE, tesseract="vie+eng", by_layout=True
    )
    assert router.route(["EN", "vi"]).tesseract == "vie+eng"
    # A language not in Latin script: its lines in the document's models, a line with a
    # word read badly again with English.
    assert router.route(["ko", "vi", "ko"]) == Route(
        codes=("ko", "vi"),
        engine=TESSERACT_ENGINE,
        tesseract="kor+vie",
        retry_with="kor+vie+eng",
        by_layout=True,
        join_glyphs=True,
    )
    assert router.route(["ko", "en"]).tesseract == "kor"
    assert router.route(["ko", "en"]).retry_with == "kor+eng"


def test_pages_are_found_by_tesseracts_layout_korean_ones_on_joined_glyphs() -> None:
    engine = MultilingualEngine(["a"], {"eng", "vie", "kor", "deu", "fra"})
    codes = ("en", "vi", "de", "fr", "ko")
    for detector in ("auto", "tesseract"):
        router = LanguageRouter(engine, detector)
        assert all(router.route([code]).by_layout for code in codes)
        assert [router.route([code]).join_glyphs for code in codes] == [False] * 4 + [True]
        assert router.route(["vi", "ko"]).join_glyphs
    ppocr = LanguageRouter(engine, "ppocr")
    assert not any(ppocr.route([code]).by_layout for code in codes)
    assert not any(ppocr.route([code]).join_glyphs for code in codes)
    # Without Tesseract there is no layout analysis: auto falls back, a forced one refuses.
    assert not LanguageRouter(ScriptedEngine(["a"])).route(["en"]).by_layout
    with pytest.raises(EngineUnavailable, match="OCR_DETECTOR=tesseract needs"):
        LanguageRouter(ScriptedEngine(["a"]), "tesseract")


@pytest.mark.parametrize(
    ("codes", "says"),
    [
        (["de"], "language 'de' is not read here"),
        (["xx", "vi", "zz"], "language 'xx', 'zz' is not read here"),
        (["vietnamese"], "'vietnamese' is not an ISO 639-1 language code"),
        (["en", "vi", "ko", "de", "fr", "es"], "at most 5 languages"),
    ],
)
def test_an_unknown_or_uninstalled_language_is_refused_listing_what_is_read(
    codes: list[str], says: str
) -> None:
    router = LanguageRouter(MultilingualEngine(["a"], {"eng", "vie", "kor"}))
    with pytest.raises(UnsupportedLanguage) as refused:
        router.route(codes)
    assert says in str(refused.value)
    assert str(refused.value).endswith("; this deployment reads: en, ko, vi")
    assert refused.value.supported == ("en", "ko", "vi")


def test_without_the_english_model_no_other_language_is_listed() -> None:
    # Every Tesseract language set includes English (names, numbers, loan words).
    router = LanguageRouter(MultilingualEngine(["a"], {"vie", "kor"}))
    assert [item.language.code for item in router.readable()] == ["en"]


def test_installed_models_are_read_from_the_tessdata_directory(tmp_path: Path) -> None:
    for model in ("eng", "vie", "deu"):
        (tmp_path / f"{model}.traineddata").write_bytes(b"")
    directory, models = installed_models(tmp_path)
    assert directory == tmp_path
    assert models == {"eng", "vie", "deu"}
    (tmp_path / "eng.traineddata").unlink()
    assert installed_models(tmp_path) == (None, frozenset())


async def test_the_pipeline_reads_a_routed_call_with_tesseract_and_says_which_engine() -> None:
    engine = MultilingualEngine(["Xin chào", None, "thế giới"], {"eng", "vie"})
    pipeline = OcrPipeline(engine, ImageLimits(max_bytes=10**7, max_pixels=10**7), workers=1, queue_size=0)
    router = LanguageRouter(engine)
    try:
        image = render_text_image(["x"])
        events = [event async for event in pipeline.recognize(image, router.route(["vi"]))]
        assert isinstance(events[0], Started)
        assert events[0].engine == TESSERACT_ENGINE
        lines = [event.line.text for event in events if isinstance(event, LineRecognized)]
        assert lines == ["Xin chào [vie+eng]", "thế giới [vie+eng]"]
        assert isinstance(events[-1], Completed)
        assert set(engine.read_in) == {("vie+eng", None)}

        engine.read_in.clear()
        events = [event async for event in pipeline.recognize(image, router.route([]))]
        assert isinstance(events[0], Started)
        assert events[0].engine == "multi"
        assert [event.line.text for event in events if isinstance(event, LineRecognized)] == [
            "Xin chào",
            "thế giới",
        ]
        assert engine.read_in == []
    finally:
        pipeline.close()


async def test_the_pipeline_finds_lines_the_way_the_route_says() -> None:
    engine = MultilingualEngine(["Annyeong"], {"eng", "kor"})
    pipeline = OcrPipeline(engine, ImageLimits(max_bytes=10**7, max_pixels=10**7), workers=1, queue_size=0)
    router = LanguageRouter(engine)
    try:
        image = render_text_image(["x"])
        for codes, by_layout, joined in ((["en"], 1, 0), (["ko"], 2, 1)):
            events = [event async for event in pipeline.recognize(image, router.route(codes))]
            assert isinstance(events[-1], Completed)
            assert (engine.layout_calls, engine.joined_calls) == (by_layout, joined)
        assert engine.detect_calls == engine.layout_calls
        by_detector = LanguageRouter(engine, "ppocr").route(["ko"])
        events = [event async for event in pipeline.recognize(image, by_detector)]
        assert (engine.layout_calls, engine.detect_calls) == (2, 3)
        assert engine.read_in[-1] == ("kor", "kor+eng")
    finally:
        pipeline.close()
