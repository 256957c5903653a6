"""Which languages this deployment reads, and who reads each: the one routing table that
the engine, the servicer and `ListLanguages` read.

English keeps the engine's own recogniser: Tesseract's LSTM out of the box where it is
installed (OCR_RECOGNIZER=auto, ocr_svc/settings.py: on dense scanned pages it reads the same
text as PP-OCR's in 0.4-0.8x the time), PP-OCR's with OCR_RECOGNIZER=ppocr or where
Tesseract is missing. Every other language is read by Tesseract's LSTM behind the same
detector and reading order, with the document's models plus English (`"vie+eng"`: names,
numbers and loan words in Latin letters are common in any of them). A request with a
language not in Latin script reads each line with the document's models first (`"kor"`)
and again with English added only where a word of it reads badly (`Route.retry_with`):
Tesseract's own choice between its languages re-read a third of the lines of a page of
Korean prose in English too, for the same text (docs/ocr.md, "Languages"). A language whose
model is not installed, or on an engine that cannot read other languages (keras), is not
listed and is refused. docs/ocr.md, "Languages", has the measurements behind the choice.

Who finds the lines is routed too (OCR_DETECTOR): by default Tesseract's layout analysis,
about a fifth of the CPU of PP-OCR's detector on a printed page with the same text; for a
request with a language not written in Latin script (Korean) on the page with each
syllable's strokes joined first, a tenth of the detector's time, at a CER as low on pages of
one to three columns and of small type (docs/ocr.md, "Finding the lines"). OCR_DETECTOR=ppocr
finds every page's lines with PP-OCR's detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ocr_svc.engines.base import EngineUnavailable, LanguageReader, LayoutDetector, OcrEngine
from ocrmesh.rules.languages import DEFAULT_LANGUAGE, InvalidLanguages, normalise_language_codes

# What `Started.engine` and `ListLanguages` say reads the lines of a Tesseract language.
TESSERACT_ENGINE = "rapidocr+tesseract"


@dataclass(frozen=True)
class Language:
    """A language some deployment may read: its ISO 639-1 code, English name, Tesseract's
    model for it (Debian's tesseract-ocr-<model>) and whether it is written in Latin script
    (if not, Tesseract's layout analysis finds its lines on joined glyphs)."""

    code: str
    name: str
    model: str
    latin: bool = True


CATALOGUE: dict[str, Language] = {
    language.code: language
    for language in (
        Language("en", "English", "eng"),
        Language("vi", "Vietnamese", "vie"),
        Language("ko", "Korean", "kor", latin=False),
        Language("de", "German", "deu"),
        Language("fr", "French", "fra"),
    )
}
ENGLISH_MODEL = CATALOGUE[DEFAULT_LANGUAGE].model


class UnsupportedLanguage(Exception):
    """A request names a language this deployment does not read (or not a language code);
    the message lists the codes it reads."""

    def __init__(self, reason: str, supported: Sequence[str]) -> None:
        super().__init__(f"{reason}; this deployment reads: {', '.join(supported)}")
        self.supported = tuple(supported)


@dataclass(frozen=True)
class Readable:
    """A language this deployment reads, and the engine that reads it."""

    language: Language
    engine: str


Detector = Literal["auto", "ppocr", "tesseract"]


@dataclass(frozen=True)
class Route:
    """How one request's lines are read: by the engine's own recogniser (`tesseract` None)
    or by Tesseract in the language string `tesseract` (`"vie+eng"`), a line with a word
    read badly again in `retry_with` (`"kor"`, then `"kor+eng"`); and how they are found:
    by the engine's detector, or (`by_layout`) by Tesseract's layout analysis, on the page
    with each character's strokes joined first when `join_glyphs` (Hangul)."""

    codes: tuple[str, ...]
    engine: str
    tesseract: str | None = None
    retry_with: str | None = None
    by_layout: bool = False
    join_glyphs: bool = False


class LanguageRouter:
    """The languages `engine` can read here, and the route of a request's languages;
    `detector` is OCR_DETECTOR (auto: Tesseract's layout, where the engine has it; the same
    as `tesseract`, which fails at start-up where it is missing)."""

    def __init__(self, engine: OcrEngine, detector: Detector = "auto") -> None:
        self._engine_name = engine.name
        layout = isinstance(engine, LayoutDetector) and engine.layout_available()
        if detector == "tesseract" and not layout:
            raise EngineUnavailable(
                "OCR_DETECTOR=tesseract needs the rapidocr engine with tesserocr and Tesseract's English "
                "model (Debian: tesseract-ocr-eng, or OCR_TESSDATA_DIR)"
            )
        self._layout: Detector = detector if layout else "ppocr"
        models = engine.tesseract_models() if isinstance(engine, LanguageReader) else frozenset()
        readable = {DEFAULT_LANGUAGE: Readable(CATALOGUE[DEFAULT_LANGUAGE], engine.name)}
        if ENGLISH_MODEL in models:
            for language in CATALOGUE.values():
                if language.code not in readable and language.model in models:
                    readable[language.code] = Readable(language, TESSERACT_ENGINE)
        self._readable = dict(sorted(readable.items()))

    def readable(self) -> list[Readable]:
        """What this deployment reads, by code."""
        return list(self._readable.values())

    def route(self, codes: Sequence[str]) -> Route:
        """The route for a request naming `codes` (none: English). Raises
        `UnsupportedLanguage` for a malformed list or a language not read here."""
        supported = list(self._readable)
        try:
            wanted = normalise_language_codes(codes) or (DEFAULT_LANGUAGE,)
        except InvalidLanguages as exc:
            raise UnsupportedLanguage(str(exc), supported) from None
        unknown = [code for code in wanted if code not in self._readable]
        if unknown:
            named = ", ".join(repr(code) for code in unknown)
            raise UnsupportedLanguage(f"language {named} is not read here", supported)
        latin = all(CATALOGUE[code].latin for code in wanted)
        by_layout = self._layout != "ppocr"
        join_glyphs = by_layout and not latin
        if wanted == (DEFAULT_LANGUAGE,):
            return Route(codes=wanted, engine=self._engine_name, by_layout=by_layout)
        models = [CATALOGUE[code].model for code in wanted if code != DEFAULT_LANGUAGE]
        every = "+".join([*models, ENGLISH_MODEL])
        return Route(
            codes=wanted,
            engine=TESSERACT_ENGINE,
            tesseract=every if latin else "+".join(models),
            retry_with=None if latin else every,
            by_layout=by_layout,
            join_glyphs=join_glyphs,
        )
