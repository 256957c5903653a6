"""Documents through a real ocr_svc (issues 25 and 26): `.venv/bin/python -m bench.documents
[--quick] [--runs N] [--parts engines languages ...] [--json PATH]`.

The whole mesh runs as processes (`harness.mesh`, the `python -m <service>` entrypoints of
`make up`) with ocr_svc's own defaults (OCR_WORKERS one per core, OCR_RECOGNIZER as
settings.py says); two more ocr_svc processes beside it read with each recogniser forced
(`OCR_RECOGNIZER=ppocr`, `=tesseract`), so the default is measured against both in the same
run. The baseline is Debian's Tesseract CLI on the same pages and cores, in its faster mode
of the run: its OpenMP threads (its default) or one thread (`OMP_THREAD_LIMIT=1`), and for
the 20-page document also one single-threaded process per core, each reading its share of
the pages. Every contestant takes its turn in each run, so load from other work falls on all
alike; figures are medians of the runs. CER: Levenshtein over the text with whitespace runs
as one space (`harness.pages.page_error_rate`).

Parts (`--parts`, all by default):
  engines      dense pages (4 columns G4 TIFF, 3 columns noisy JPEG) and magazine pages:
               s/page, first line, CER of the default, of each recogniser, and of Tesseract
  languages    a page of prose in en, vi, ko, de, fr, and a Korean magazine page: pages/s,
               first line, CER vs `tesseract page.png - -l <model>+eng`
  document     a 20-page scanned PDF: first line after upload, pages/s vs Tesseract on the
               same pages, peak RSS of all ocr_svc processes (psutil)
  text-layer   a born-digital PDF page: ms per page, CER
  orientation  a page turned 90/180/270 and skewed +-4 degrees: CER against the upright page
  rendering    RenderDocument (txt, hocr, alto, pdf) of the 20-page PDF against Recognize, and
               the gateway's peak RSS growth for POST /ocr?format=pdf of it
A part whose feature is not in ocr_svc yet prints "n/a (not landed)".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import psutil  # type: ignore[import-untyped]

from bench.gateway_calls import sign_up_bench_user
from bench.ocr_calls import ensure_tesseract
from bench.report import Row, add_json_argument, emit, median, ratio_lower_is_better, say
from harness.doc_truth import ProsePage, english_page, rotated_png, scanned_document, text_layer_pdf
from harness.language_pages import FontMissing, language_page
from harness.magazine import MagazineSpec, korean_spec, render_magazine
from harness.mesh import Mesh, running_mesh
from harness.pages import PageSpec, page_error_rate, render_page
from harness.ports import free_port
from harness.scratch import postgres_admin_url
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import bearer_metadata, create_channel
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL

BENCH = "documents"
PARTS = ("engines", "languages", "document", "text-layer", "orientation", "rendering")
NOT_LANDED = "n/a (not landed)"
LANGUAGES = ("en", "vi", "ko", "de", "fr")
TESSERACT_MODELS = {"en": "eng", "vi": "vie", "ko": "kor", "de": "deu", "fr": "fra"}
# The forced recognisers measured beside the default (replica name -> OCR_RECOGNIZER).
RECOGNISERS = {"ppocr": "ppocr", "tesseract": "tesseract"}
FORMATS: dict[str, ocr_pb2.OutputFormat] = {
    "txt": ocr_pb2.OUTPUT_FORMAT_TXT,
    "hocr": ocr_pb2.OUTPUT_FORMAT_HOCR,
    "alto": ocr_pb2.OUTPUT_FORMAT_ALTO,
    "pdf": ocr_pb2.OUTPUT_FORMAT_PDF,
}
CALL_TIMEOUT = 900.0
CORES = os.cpu_count() or 1


# -- one OCR by each contestant ---------------------------------------------------------------


class NotLanded(Exception):
    """ocr_svc refused or does not implement what a part needs (a feature not in yet)."""


@dataclass
class Reading:
    """One Recognize: seconds in all, to the first line event, and what came back."""

    seconds: float
    first_line: float
    full_text: str
    # page number (1-based; 1 when the service sends no page numbers) -> its lines' texts
    pages: dict[int, list[str]] = field(default_factory=dict)
    page_events: list[ocr_pb2.Page] = field(default_factory=list)
    engine: str = ""

    def page_text(self, page: int) -> str:
        return "\n".join(self.pages.get(page, []))


async def recognize(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub,
    token: str,
    data: bytes,
    languages: Sequence[str] = (),
    *,
    force_ocr: bool = False,
) -> Reading:
    started = time.perf_counter()
    first: float | None = None
    reading = Reading(0.0, 0.0, "")
    call = stub.Recognize(
        ocr_pb2.RecognizeRequest(image=data, languages=list(languages), force_ocr=force_ocr),
        metadata=bearer_metadata(token),
        timeout=CALL_TIMEOUT,
    )
    try:
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "line":
                if first is None:
                    first = time.perf_counter() - started
                reading.pages.setdefault(event.line.page or 1, []).append(event.line.text)
            elif kind == "page":
                reading.page_events.append(event.page)
            elif kind == "started":
                reading.engine = event.started.engine
            elif kind == "completed":
                reading.full_text = event.completed.full_text
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED):
            raise NotLanded(f"{exc.code().name}: {exc.details()}") from exc
        raise
    reading.seconds = time.perf_counter() - started
    reading.first_line = first if first is not None else reading.seconds
    return reading


async def render(
    stub: ocr_pb2_grpc.OcrServiceAsyncStub, token: str, data: bytes, output: ocr_pb2.OutputFormat
) -> tuple[float, int]:
    """Seconds for RenderDocument of `data` in `output`, and the bytes rendered."""
    started = time.perf_counter()
    size = 0
    call = stub.RenderDocument(
        ocr_pb2.RenderDocumentRequest(document=ocr_pb2.RecognizeRequest(image=data), format=output),
        metadata=bearer_metadata(token),
        timeout=CALL_TIMEOUT,
    )
    try:
        async for part in call:
            if part.WhichOneof("part") == "chunk":
                size += len(part.chunk)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED):
            raise NotLanded(f"{exc.code().name}: {exc.details()}") from exc
        raise
    return time.perf_counter() - started, size


# Tesseract's ways to run: its OpenMP threads (the default) or one thread; for many pages
# also one single-threaded process per core, each with its share of the pages.
OPENMP = "OpenMP threads"
ONE_THREAD = "OMP_THREAD_LIMIT=1"
PER_CORE = f"{CORES} processes x 1 thread"


def _tesseract_env(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
    return env if mode == OPENMP else {**env, "OMP_THREAD_LIMIT": "1"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tesseract_cli(
    tesseract: str, paths: Sequence[Path], model: str, mode: str
) -> tuple[float, list[str], float]:
    """Seconds for Tesseract's CLI to read `paths` in `mode`, each page's text, and the CPU
    seconds its processes used (one call at a time: the children reaped meanwhile are its)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    shares = [list(paths)] if mode != PER_CORE else [list(paths[k::CORES]) for k in range(CORES)]
    procs = []
    for n, share in enumerate(shares):
        if not share:
            continue
        listing = share[0].parent / f"pages-{n}.txt"
        listing.write_text("\n".join(str(p) for p in share) + "\n")
        target = str(share[0]) if len(share) == 1 else str(listing)
        procs.append(
            (
                share,
                subprocess.Popen(
                    [tesseract, target, "-", "-l", model],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=_tesseract_env(mode),
                ),
            )
        )
    texts: dict[Path, str] = {}
    for share, proc in procs:
        out, _ = proc.communicate()
        # Tesseract ends each page of a list with a form feed.
        for path, text in zip(share, out.decode().split("\f"), strict=False):
            texts[path] = text
    return time.perf_counter() - started, [texts.get(p, "") for p in paths], _children_cpu() - cpu


# -- memory ------------------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its living descendants."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


class TreeRss:
    """Samples the resident memory of a process and all its descendants (psutil) in a
    thread; `peak()` since the last `reset()`, in MiB. Each process's memory is read every
    20 ms, the tree itself every 0.25 s: finding descendants reads every process's
    /proc/<pid>/stat, and done every 20 ms that scan took a tenth of a core and, holding
    the GIL of this process, slowed the bench's own gRPC client reading the events it
    measures (ocr_svc's cores then waited on its stream: 20-page PDF 0.92x with that scan,
    1.06x without, same hour)."""

    SAMPLE_S = 0.02
    TREE_S = 0.25

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._tree: list[psutil.Process] = [self._root]
        self._tree_at = 0.0
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _members(self, refresh: bool) -> list[psutil.Process]:
        if refresh or time.monotonic() - self._tree_at >= self.TREE_S:
            with contextlib.suppress(psutil.Error):
                self._tree = [self._root, *self._root.children(recursive=True)]
            self._tree_at = time.monotonic()
        return self._tree

    def now(self, refresh: bool = True) -> float:
        total = 0
        for proc in self._members(refresh):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / (1024 * 1024)

    def _run(self) -> None:
        while not self._stop.wait(self.SAMPLE_S):
            with contextlib.suppress(psutil.Error):
                self._peak = max(self._peak, self.now(refresh=False))

    def reset(self) -> float:
        self._peak = self.now()
        return self._peak

    def peak(self) -> float:
        return self._peak

    def __enter__(self) -> TreeRss:
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Bench:
    """What every part measures with: the mesh, a token, ocr_svc stubs by name ("default",
    "ppocr", "tesseract"), the Tesseract CLI and a scratch directory."""

    mesh: Mesh
    token: str
    stubs: dict[str, ocr_pb2_grpc.OcrServiceAsyncStub]
    # ocr_svc's process (the supervisor; its workers are its children) by stub name
    pids: dict[str, int]
    tesseract: str
    tmp: Path
    runs: int
    quick: bool
    # What reads English out of the box (Started.engine of the default ocr_svc).
    default_engine: str = ""
    rows: list[Row] = field(default_factory=list)

    def contestants(self) -> list[str]:
        """The forced recognisers when they run (one of them is the default), else the default."""
        forced = [name for name in RECOGNISERS if name in self.stubs]
        return forced or ["default"]

    def label(self, contestant: str, engine: str) -> str:
        if contestant == "default":
            return "default"
        return f"OCR_RECOGNIZER={contestant}" + (" (the default)" if engine == self.default_engine else "")

    def write(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def row(
        self, figure: str, ours: float, baseline: float | None, unit: str, ratio: float | None, note: str
    ) -> None:
        self.rows.append(Row(BENCH, figure, ours, baseline, unit, ratio, note))
        say(f"{figure}: {ours:.3g} {unit} vs {baseline if baseline is None else f'{baseline:.3g}'}; {note}")

    def not_landed(self, figure: str, why: str) -> None:
        self.rows.append(Row(BENCH, figure, float("nan"), None, "", None, f"{NOT_LANDED}: {why}"))
        say(f"{figure}: {NOT_LANDED}: {why}")


def modes_this_run(times: dict[str, list[float]], run: int) -> list[str]:
    """Tesseract's modes to run: every one in the first run, then only the one that was
    fastest in it (the slower ones cost minutes on dense pages and never won a later run)."""
    if run == 0:
        return list(times)
    return [min(times, key=lambda mode: times[mode][0])]


def best_mode(times: dict[str, list[float]]) -> tuple[str, float, str]:
    """The fastest mode, its median seconds, and the others' first-run seconds."""
    best = min(times, key=lambda mode: times[mode][0])
    others = ", ".join(f"{mode} {runs[0]:.2f} s" for mode, runs in times.items() if mode != best)
    return best, median(times[best]), others


async def compare_page(
    bench: Bench,
    name: str,
    data: bytes,
    suffix: str,
    truth: str,
    contestants: Sequence[str],
    language: str = "en",
) -> dict[str, Outcome]:
    """Each ocr_svc in `contestants` and Tesseract's CLI (both modes) on one page, taking
    turns `bench.runs` times; {contestant: (median s, median first line s, CER, engine)},
    Tesseract under "tesseract-cli" with its faster mode as the engine."""
    path = bench.write(f"page{suffix}", data)
    codes = [] if language == "en" else [language]
    model = "+".join(dict.fromkeys([TESSERACT_MODELS[language], "eng"]))
    ours: dict[str, list[Reading]] = {c: [] for c in contestants}
    cpu: dict[str, list[float]] = {c: [] for c in contestants}
    cli_cpu: dict[str, list[float]] = {ONE_THREAD: [], OPENMP: []}
    cli: dict[str, list[float]] = {ONE_THREAD: [], OPENMP: []}
    cli_text: dict[str, str] = {}
    say(f"{name}: {bench.runs} runs of {', '.join(contestants)} and tesseract -l {model} ...")
    for run in range(bench.runs):
        for contestant in contestants:
            before = tree_cpu(bench.pids[contestant])
            ours[contestant].append(await recognize(bench.stubs[contestant], bench.token, data, codes))
            cpu[contestant].append(tree_cpu(bench.pids[contestant]) - before)
        for mode in modes_this_run(cli, run):
            seconds, texts, used = await asyncio.to_thread(
                tesseract_cli, bench.tesseract, [path], model, mode
            )
            cli[mode].append(seconds)
            cli_cpu[mode].append(used)
            cli_text[mode] = texts[0]
    results = {
        c: Outcome(
            median([r.seconds for r in readings]),
            median([r.first_line for r in readings]),
            page_error_rate(truth, readings[-1].full_text),
            readings[-1].engine,
            median(cpu[c]),
        )
        for c, readings in ours.items()
    }
    mode, seconds, others = best_mode(cli)
    cer = page_error_rate(truth, cli_text[mode])
    results["tesseract-cli"] = Outcome(seconds, seconds, cer, f"{mode} ({others})", median(cli_cpu[mode]))
    return results


@dataclass(frozen=True)
class Outcome:
    """One contestant on one page: median seconds, first line, CER of the last run, which
    engine (for Tesseract's CLI: its mode), median CPU seconds."""

    seconds: float
    first_line: float
    cer: float
    engine: str
    cpu: float


async def part_engines(bench: Bench) -> None:
    four = render_page(PageSpec(columns=4, seed=11, lines_per_column=30))
    pages = [("4-column page, G4 TIFF", four.tiff, ".tif", four.truth_text)]
    magazine = render_magazine(MagazineSpec(seed=3))
    pages.append(("magazine page, G4 TIFF", magazine.tiff, ".tif", magazine.truth_text))
    if not bench.quick:
        three = render_page(PageSpec(columns=3, seed=12, lines_per_column=40))
        pages.append(("3-column page, noisy JPEG", three.jpeg, ".jpg", three.truth_text))
        pages.append(("magazine page, scanner JPEG", magazine.jpeg, ".jpg", magazine.truth_text))
    for name, data, suffix, truth in pages:
        results = await compare_page(bench, name, data, suffix, truth, bench.contestants())
        cli = results["tesseract-cli"]
        for contestant in bench.contestants():
            ours = results[contestant]
            bench.row(
                f"s/page vs Tesseract CLI, {bench.label(contestant, ours.engine)}: {name}",
                ours.seconds,
                cli.seconds,
                "s",
                ratio_lower_is_better(ours.seconds, cli.seconds),
                f"engine {ours.engine}; CER {ours.cer:.3f} (Tesseract {cli.cer:.3f}); first line "
                f"{ours.first_line:.2f} s; CPU {ours.cpu:.1f} s (Tesseract {cli.cpu:.1f} s); "
                f"Tesseract's faster mode: {cli.engine}",
            )


def prose_page(language: str) -> ProsePage | None:
    if language == "en":
        return english_page()
    try:
        page = language_page(language)
    except FontMissing as exc:
        say(f"{language}: {exc}")
        return None
    return ProsePage(language=language, truth_lines=page.truth_lines, image=page.image)


async def part_languages(bench: Bench) -> None:
    pages: list[tuple[str, str, bytes, str, str]] = []
    for language in LANGUAGES:
        page = prose_page(language)
        if page is None:
            bench.not_landed(f"pages/s vs Tesseract CLI: {language} page", "font missing")
            continue
        pages.append((language, f"{language} page", page.png, ".png", page.truth_text))
    if any(language == "ko" for language, *_ in pages):
        magazine = render_magazine(korean_spec(3))
        pages.append(("ko", "ko magazine page, G4 TIFF", magazine.tiff, ".tif", magazine.truth_text))
    for language, name, data, suffix, truth in pages:
        contestants = bench.contestants() if language == "en" else ["default"]
        results = await compare_page(bench, name, data, suffix, truth, contestants, language)
        cli = results["tesseract-cli"]
        for contestant in contestants:
            ours = results[contestant]
            label = "" if contestant == "default" else f", {bench.label(contestant, ours.engine)}"
            bench.row(
                f"pages/s vs Tesseract CLI: {name}{label}",
                1 / ours.seconds,
                1 / cli.seconds,
                "pages/s",
                ratio_lower_is_better(ours.seconds, cli.seconds),
                f"engine {ours.engine}; CER {ours.cer:.3f} (Tesseract {cli.cer:.3f}); first line "
                f"{ours.first_line * 1e3:.0f} ms; CPU {ours.cpu:.2f} s (Tesseract {cli.cpu:.2f} s); "
                f"Tesseract's faster mode: {cli.engine}",
            )


async def part_document(bench: Bench, pages: int, rendering: bool) -> None:
    """The scanned document through Recognize against Tesseract's CLI on the same pages and,
    with `rendering`, RenderDocument in every format in the same runs (issue 26)."""
    document = scanned_document(pages)
    figure = f"{pages}-page scanned PDF"
    stub = bench.stubs["default"]
    paths = [bench.write(f"doc-{n:03d}.tif", tiff) for n, tiff in enumerate(document.tiffs)]
    ocr_pid = bench.mesh.processes["ocr"].pid
    readings: list[Reading] = []
    cpu: list[float] = []
    cli: dict[str, list[float]] = {PER_CORE: [], ONE_THREAD: [], OPENMP: []}
    cli_cpu: dict[str, list[float]] = {mode: [] for mode in cli}
    cli_texts: dict[str, list[str]] = {}
    peaks: list[float] = []
    rendered: dict[str, list[tuple[float, float]]] = {name: [] for name in FORMATS}
    sizes: dict[str, int] = {}
    render_missing = "" if rendering else "not asked"
    calls = "Recognize and RenderDocument" if rendering else "Recognize"
    say(f"{figure}: {bench.runs} runs of ocr_svc ({calls}) and tesseract ...")
    with TreeRss(ocr_pid) as rss:
        idle = rss.reset()
        for run in range(bench.runs):
            rss.reset()
            before = tree_cpu(ocr_pid)
            try:
                readings.append(await recognize(stub, bench.token, document.pdf))
            except NotLanded as exc:
                bench.not_landed(f"first line after upload: {figure}", str(exc))
                return
            cpu.append(tree_cpu(ocr_pid) - before)
            peaks.append(rss.peak())
            for name, output in FORMATS.items():
                if render_missing:
                    break
                before = tree_cpu(ocr_pid)
                try:
                    seconds, sizes[name] = await render(stub, bench.token, document.pdf, output)
                except NotLanded as exc:
                    render_missing = str(exc)
                    break
                rendered[name].append((seconds, tree_cpu(ocr_pid) - before))
            for mode in modes_this_run(cli, run):
                seconds, texts, used = await asyncio.to_thread(
                    tesseract_cli, bench.tesseract, paths, "eng", mode
                )
                cli[mode].append(seconds)
                cli_cpu[mode].append(used)
                cli_texts[mode] = texts
            say(f"run {run + 1} of {bench.runs}: Recognize {readings[-1].seconds:.1f} s")
    last = readings[-1]
    if not last.page_events or max(last.pages, default=1) < 2:
        bench.not_landed(f"pages/s vs Tesseract CLI: {figure}", f"one page read of {pages}, no page events")
        return
    cers = [page_error_rate(truth, last.page_text(n)) for n, truth in enumerate(document.truths, start=1)]
    in_order = [e.page for e in last.page_events] == list(range(1, pages + 1))
    mode, cli_s, others = best_mode(cli)
    cli_cer = statistics.mean(
        page_error_rate(t, x) for t, x in zip(document.truths, cli_texts[mode], strict=True)
    )
    seconds = median([r.seconds for r in readings])
    first = median([r.first_line for r in readings])
    bench.row(
        f"first line after upload: {figure}",
        first,
        None,
        "s",
        None,
        f"target <= 2 s; runs {', '.join(f'{r.first_line:.2f}' for r in readings)}",
    )
    bench.row(
        f"pages/s vs Tesseract CLI: {figure}",
        pages / seconds,
        pages / cli_s,
        "pages/s",
        ratio_lower_is_better(seconds, cli_s),
        f"{seconds:.1f} s vs {cli_s:.1f} s ({mode}; {others}); mean page CER {statistics.mean(cers):.3f} "
        f"(max {max(cers):.3f}; Tesseract {cli_cer:.3f}); pages in order: {in_order}; engine {last.engine}; "
        f"CPU {median(cpu):.1f} s (Tesseract {median(cli_cpu[mode]):.1f} s)",
    )
    bench.row(
        f"ocr_svc peak RSS, all processes: {figure}",
        max(peaks),
        idle,
        "MiB",
        None,
        f"target <= 1024 MiB; baseline: the same processes idle before; "
        f"runs {', '.join(f'{p:.0f}' for p in peaks)}",
    )
    if not rendering:
        return
    if render_missing:
        bench.not_landed(f"RenderDocument vs Recognize: {figure}", render_missing)
        return
    base, base_cpu = seconds, median(cpu)
    for name, runs in rendered.items():
        took, took_cpu = median([t for t, _ in runs]), median([c for _, c in runs])
        bench.row(
            f"RenderDocument {name} vs Recognize: {figure}",
            took,
            base,
            "s",
            ratio_lower_is_better(took, base),
            f"target <= +10 %: {(took / base - 1) * 100:+.1f} % wall, ocr_svc CPU {took_cpu:.1f} vs "
            f"{base_cpu:.1f} s ({(took_cpu / base_cpu - 1) * 100:+.1f} %); {sizes[name] / 1024:.0f} KiB",
        )
    await gateway_rss(bench, document.pdf, figure)


async def part_text_layer(bench: Bench) -> None:
    pages = 3 if bench.quick else 10
    data, truths = text_layer_pdf(pages)
    figure = f"text-layer PDF ({pages} pages): ms per page"
    times: list[float] = []
    reading: Reading | None = None
    try:
        for _ in range(max(3, bench.runs)):
            reading = await recognize(bench.stubs["default"], bench.token, data)
            times.append(reading.seconds)
    except NotLanded as exc:
        bench.not_landed(figure, str(exc))
        return
    assert reading is not None
    sources = {e.source for e in reading.page_events}
    if "text_layer" not in sources:
        bench.not_landed(
            figure, f"pages read by {sorted(sources) or 'no page events'}, not from the text layer"
        )
        return
    cer = statistics.mean(page_error_rate(t, reading.page_text(n)) for n, t in enumerate(truths, start=1))
    per_page = median(times) / pages * 1e3
    bench.row(
        figure, per_page, None, "ms", None, f"target < 100 ms; mean page CER {cer:.3f}; source text_layer"
    )


async def part_orientation(bench: Bench) -> None:
    page = english_page()
    turns: list[tuple[str, float]] = [
        ("90", 90),
        ("180", 180),
        ("270", 270),
        ("skew +4", 4.0),
        ("skew -4", -4.0),
    ]
    upright: list[Reading] = []
    turned: dict[str, list[Reading]] = {name: [] for name, _ in turns}
    images = {name: rotated_png(page.image, degrees) for name, degrees in turns}
    say(f"orientation: {bench.runs} runs of the upright page and {len(turns)} turned ones ...")
    for _ in range(bench.runs):
        upright.append(await recognize(bench.stubs["default"], bench.token, page.png))
        for name, _ in turns:
            turned[name].append(await recognize(bench.stubs["default"], bench.token, images[name]))
    base_cer = page_error_rate(page.truth_text, upright[-1].full_text)
    if not upright[-1].page_events:
        for name, _ in turns:
            cer = page_error_rate(page.truth_text, turned[name][-1].full_text)
            bench.not_landed(
                f"CER vs upright: page turned {name}", f"no page events; CER {cer:.3f} vs {base_cer:.3f}"
            )
        return
    for name, _ in turns:
        last = turned[name][-1]
        cer = page_error_rate(page.truth_text, last.full_text)
        event = last.page_events[0]
        bench.row(
            f"CER vs upright: page turned {name}",
            cer,
            base_cer,
            "",
            None,
            f"target within 0.01: {cer - base_cer:+.3f}; page event rotation {event.rotation}, "
            f"skew {event.skew:.1f}; {median([r.seconds for r in turned[name]]):.2f} s vs "
            f"{median([r.seconds for r in upright]):.2f} s upright",
        )


async def gateway_rss(bench: Bench, pdf: bytes, figure: str) -> None:
    proc = bench.mesh.processes["gateway"]
    url = f"{bench.mesh.gateway_url}/ocr"
    headers = {"Authorization": f"Bearer {bench.token}"}

    def post(data: bytes) -> tuple[int, str, int]:
        size = 0
        with (
            httpx.Client(timeout=CALL_TIMEOUT) as client,
            client.stream(
                "POST",
                url,
                params={"format": "pdf"},
                headers=headers,
                files={"file": ("scan.pdf", data, "application/pdf")},
            ) as response,
        ):
            for chunk in response.iter_bytes():
                size += len(chunk)
            return response.status_code, response.headers.get("content-type", ""), size

    small = scanned_document(1).pdf
    with TreeRss(proc.pid) as rss:
        status, kind, _ = await asyncio.to_thread(post, small)  # warm: connections, imports
        if status != 200 or not kind.startswith("application/pdf"):
            bench.not_landed(
                f"gateway peak RSS growth, POST /ocr?format=pdf: {figure}", f"HTTP {status} {kind}"
            )
            return
        growths = []
        for _ in range(max(1, bench.runs - 1)):
            before = rss.reset()
            status, kind, size = await asyncio.to_thread(post, pdf)
            growths.append(rss.peak() - before)
    bench.row(
        f"gateway peak RSS growth, POST /ocr?format=pdf: {figure}",
        max(growths),
        None,
        "MiB",
        None,
        f"target < 50 MiB; gateway RSS before {before:.0f} MiB; answer {size / 1024:.0f} KiB, HTTP {status}",
    )


# -- services ----------------------------------------------------------------------------------


@contextlib.contextmanager
def running_services(workdir: Path, recognisers: bool) -> Iterator[Mesh]:
    """The mesh with ocr_svc's defaults (one worker per core), plus an ocr_svc per forced
    recogniser (replicas "ocr-ppocr", "ocr-tesseract") when `recognisers`."""
    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    with running_mesh(
        workdir,
        postgres_admin_url=postgres_admin_url(),
        rabbitmq_url=rabbitmq_url,
        extra_env={
            "AUTH_HOST": "127.0.0.1",
            "OCR_HOST": "127.0.0.1",
            # ocr_svc's own default (harness.mesh runs one worker for the tests).
            "OCR_WORKERS": str(CORES),
            # One user sends everything here: measure the service, not the per-user limit.
            "OCR_MAX_CALLS_PER_USER": "0",
        },
    ) as mesh:
        if recognisers:
            for name, value in RECOGNISERS.items():
                mesh.start(
                    f"ocr-{name}",
                    service="ocr",
                    env={
                        "OCR_PORT": str(free_port()),
                        "OCR_METRICS_PORT": str(free_port()),
                        "OCR_RECOGNIZER": value,
                    },
                )
            for name in RECOGNISERS:
                mesh.wait_ready(f"ocr-{name}")
        yield mesh


def replica_addr(mesh: Mesh, name: str) -> str:
    _, env = mesh.replicas[name]
    return f"127.0.0.1:{env['OCR_PORT']}"


async def measure(mesh: Mesh, token: str, args: argparse.Namespace, tesseract: str, tmp: Path) -> list[Row]:
    addrs = {"default": mesh.ocr_addr}
    addrs |= {
        name: replica_addr(mesh, f"ocr-{name}") for name in RECOGNISERS if f"ocr-{name}" in mesh.replicas
    }
    channels = {name: create_channel(addr) for name, addr in addrs.items()}
    stubs = {name: ocr_pb2_grpc.OcrServiceStub(channel) for name, channel in channels.items()}
    pids = {"default": mesh.processes["ocr"].pid}
    pids |= {name: mesh.processes[f"ocr-{name}"].pid for name in stubs if name != "default"}
    bench = Bench(mesh, token, stubs, pids, tesseract, tmp, args.runs, args.quick)
    warm = english_page().png
    for name, stub in stubs.items():
        for codes in [(), ("vi",), ("ko",), ("de",), ("fr",)]:
            # Each thread's first line in a language set pays its model load.
            reading = await recognize(stub, token, warm, codes)
            if name == "default" and not codes:
                bench.default_engine = reading.engine
        say(f"ocr_svc {name} warm")
    # The first document and the first rendering of each format pay one-off costs (imports,
    # the rendering workers' start): not what a page costs.
    small = scanned_document(1).pdf
    with contextlib.suppress(NotLanded):
        await recognize(stubs["default"], token, small)
        for output in FORMATS.values():
            await render(stubs["default"], token, small, output)
    say("documents and renderings warm")
    doc_pages = args.pages or (5 if args.quick else 20)
    parts: dict[str, Callable[[], Awaitable[None]]] = {
        "engines": lambda: part_engines(bench),
        "languages": lambda: part_languages(bench),
        "document": lambda: part_document(bench, doc_pages, rendering="rendering" in args.parts),
        "text-layer": lambda: part_text_layer(bench),
        "orientation": lambda: part_orientation(bench),
    }
    try:
        for part in args.parts:
            if part == "rendering" and "document" in args.parts:
                continue  # measured in the document's runs
            if part == "rendering":
                await part_document(bench, doc_pages, rendering=True)
                continue
            await parts[part]()
    finally:
        for channel in channels.values():
            await channel.close()
    return bench.rows


def run(args: argparse.Namespace) -> list[Row]:
    tesseract = shutil.which("tesseract") or ensure_tesseract()
    if tesseract is None:
        raise SystemExit("Debian's tesseract-ocr is needed (scripts/debian_tools.py bench)")
    recognisers = bool({"engines", "languages"} & set(args.parts))
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as tmp:
        workdir = Path(tmp)
        (workdir / "mesh").mkdir()
        (workdir / "pages").mkdir()
        say("starting the mesh ...")
        with running_services(workdir / "mesh", recognisers) as mesh:
            token = sign_up_bench_user(mesh)
            say("mesh ready, user signed up")
            return asyncio.run(measure(mesh, token, args, tesseract, workdir / "pages"))


def main() -> int:
    parser = argparse.ArgumentParser(description="documents through ocr_svc against Tesseract's CLI")
    parser.add_argument("--quick", action="store_true", help="one run, fewer pages (a few minutes)")
    parser.add_argument(
        "--runs", type=int, default=None, help="runs of every contestant (default 3, quick 1)"
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--pages", type=int, default=None, help="pages of the scanned PDF (20, quick 5)")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    emit(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
