"""How `ocrmesh ocr` shows results, each line the moment it arrives: rich text for people
(a dim heading per page of a document, a progress bar on stderr when it is a terminal),
`--text` plain lines (a form feed line between pages), `--json` NDJSON events (`page`
events included). Failures are one line on stderr in every mode (and an `error` event with --json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ocrmesh.rules.ocr_events import CompletedEvent, LineEvent, OcrEvent, PageEvent, StartedEvent
from ocrmesh_cli.errors import CliError

PROGRAM = "ocrmesh"
# Between two pages in plain text: the form feed of the `txt` format.
PAGE_BREAK = "\f"


def page_heading(event: PageEvent, page_count: int) -> str:
    """`page 2 of 4 (turned 90°, deskewed 1.5°, PDF text layer)`: the page and what was done
    to it."""
    notes = []
    if event.rotation:
        notes.append(f"turned {event.rotation}°")
    if abs(event.skew) >= 0.05:
        notes.append(f"deskewed {event.skew:g}°")
    if event.source == "text_layer":
        notes.append("PDF text layer")
    of = f" of {page_count}" if page_count > 1 else ""
    return f"page {event.page}{of}" + (f" ({', '.join(notes)})" if notes else "")


class _Pages:
    """Per file: how many pages the document has (from `started`) and whether a page has
    begun yet, to mark the boundaries between pages."""

    def __init__(self) -> None:
        self._count: dict[Path, int] = {}
        self._seen: set[Path] = set()

    def boundary(self, path: Path, event: OcrEvent) -> tuple[bool, int] | None:
        """For a page event: (whether a page came before it, the page count); else None."""
        if isinstance(event, StartedEvent):
            self._count[path] = event.page_count
            self._seen.discard(path)
            return None
        if not isinstance(event, PageEvent):
            return None
        before = path in self._seen
        self._seen.add(path)
        return before, self._count.get(path, 1)


def error_line(message: str) -> str:
    """A failure as the one line shown on stderr."""
    return f"{PROGRAM}: {' '.join(message.split())}"


class OcrOutput(Protocol):
    """Where the events of every file go; used as a context manager around the whole run."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def event(self, path: Path, event: OcrEvent) -> None: ...

    def failed(self, path: Path, error: CliError) -> None: ...


class _PlainOutput:
    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def _write(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()  # each line as it arrives, also into a pipe

    def failed(self, path: Path, error: CliError) -> None:
        self._err.write(error_line(error.message) + "\n")
        self._err.flush()


class TextOutput(_PlainOutput):
    """`--text`: the recognised lines, one per line; prefixed `FILE: ` (as grep does) when
    there are several files, since their lines interleave."""

    def __init__(self, *, several: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        super().__init__(stdout, stderr)
        self._several = several
        self._pages = _Pages()

    def event(self, path: Path, event: OcrEvent) -> None:
        boundary = self._pages.boundary(path, event)
        if boundary is not None and boundary[0]:
            # A form feed alone on a line between pages, as in the `txt` format.
            self._write(f"{path}: {PAGE_BREAK}" if self._several else PAGE_BREAK)
        if isinstance(event, LineEvent):
            self._write(f"{path}: {event.text}" if self._several else event.text)


class JsonOutput(_PlainOutput):
    """`--json`: every event as one JSON object per line (NDJSON), with its `file`; a file
    that fails ends with `{"type": "error", "file", "exit_code", "detail"}`."""

    def event(self, path: Path, event: OcrEvent) -> None:
        record: dict[str, Any] = {"type": event.type, "file": str(path)}
        record.update(event.model_dump(mode="json", exclude={"type"}))
        self._write(json.dumps(record, ensure_ascii=False))

    def failed(self, path: Path, error: CliError) -> None:
        record = {"type": "error", "file": str(path), "exit_code": int(error.code), "detail": error.message}
        self._write(json.dumps(record, ensure_ascii=False))
        super().failed(path, error)


class RichOutput:
    """The default: each line's text on stdout (dimmed file name first when several), a
    summary per file and failures on stderr, and a progress bar over the files on stderr
    when `progress` is on (stderr a terminal, several files)."""

    def __init__(
        self, *, total: int, progress: bool, stdout: Console | None = None, stderr: Console | None = None
    ) -> None:
        self._several = total > 1
        self._pages = _Pages()
        # soft_wrap: a long line stays one line, whatever the terminal's width.
        self._out = stdout or Console(soft_wrap=True, highlight=False)
        self._err = stderr or Console(stderr=True, soft_wrap=True, highlight=False)
        self._progress: Progress | None = None
        if progress:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("OCR"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._err,
                transient=True,
                # Lines printed to a stdout that is this terminal go above the bar; a stdout
                # that is a file or a pipe is left alone.
                redirect_stdout=self._out.is_terminal,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task("ocr", total=total)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def event(self, path: Path, event: OcrEvent) -> None:
        boundary = self._pages.boundary(path, event)
        if boundary is not None and isinstance(event, PageEvent):
            _, page_count = boundary
            # A heading per page of a document; an image (one page, upright) needs none.
            if page_count > 1 or event.rotation or event.source == "text_layer":
                heading = Text(f"── {page_heading(event, page_count)} ──", style="dim")
                if self._several:
                    heading = Text.assemble((f"{path}: ", "dim"), heading)
                self._out.print(heading)
        if isinstance(event, LineEvent):
            text = Text(event.text)  # a Text: OCR output is never read as rich markup
            if self._several:
                text = Text.assemble((f"{path}: ", "dim"), text)
            self._out.print(text)
        elif isinstance(event, CompletedEvent):
            self._advance()
            seconds = event.timings.total_ms / 1000
            lines = f"{event.line_count} line{'' if event.line_count == 1 else 's'}"
            pages = f"{event.page_count} pages, " if event.page_count > 1 else ""
            self._err.print(Text(f"{path}: {pages}{lines} in {seconds:.1f} s", style="green"))

    def failed(self, path: Path, error: CliError) -> None:
        self._advance()
        self._err.print(Text(error_line(error.message), style="red"))
