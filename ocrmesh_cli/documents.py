"""`ocrmesh ocr FILE... --format pdf|hocr|alto|txt|json [-o PATH]`: each file rendered by the
gateway (`/ocr?format=`) or ocr_svc (`RenderDocument`, with --grpc) and written as it
arrives to its destination: a temporary file beside it, renamed into place only once the
whole answer is in, so a download that breaks off never leaves a file that looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from ocrmesh_cli.errors import CliError, ExitCode, worst

FORMATS: Final = ("json", "txt", "hocr", "alto", "pdf")
# The extension a file gets in an output directory: `scan.pdf` -> `scan.ocr.pdf`, never the
# input's own name.
EXTENSIONS: Final = {"json": "json", "txt": "txt", "hocr": "hocr", "alto": "xml", "pdf": "pdf"}
BINARY_FORMATS: Final = frozenset({"pdf"})


@dataclass(frozen=True)
class Rendered:
    """What a rendered document's answer said about it (its bytes went to the sink)."""

    filename: str
    content_type: str
    page_count: int | None
    size: int


# (document bytes, file name, sink) -> what was written
Renderer = Callable[[bytes, str, BinaryIO], Awaitable[Rendered]]


@dataclass(frozen=True)
class Destination:
    """Where one file's rendering goes: a path, or stdout (None)."""

    source: Path
    path: Path | None


def destinations(
    files: Sequence[Path], output: Path | None, output_format: str, *, stdout_is_tty: bool
) -> list[Destination]:
    """Each FILE's destination. One file: `output`, or stdout without it (a PDF never to a
    terminal). Several files: `output` must be a directory, each written as
    `<stem>.ocr.<ext>` in it. Raises CliError (usage) otherwise, or when a destination
    is one of the inputs."""
    if len(files) == 1 and (output is None or not output.is_dir()):
        if output is None and output_format in BINARY_FORMATS and stdout_is_tty:
            raise CliError(ExitCode.USAGE, f"a {output_format} file is not for a terminal: give -o FILE")
        chosen = [Destination(files[0], output)]
    else:
        if output is None or not output.is_dir():
            raise CliError(ExitCode.USAGE, "with several files, -o must name an existing directory")
        extension = EXTENSIONS[output_format]
        chosen = [Destination(path, output / f"{path.stem}.ocr.{extension}") for path in files]
        names = [d.path for d in chosen]
        if len(set(names)) != len(names):
            raise CliError(ExitCode.USAGE, "two files would be written to the same name in -o: rename one")
    inputs = {path.resolve() for path in files}
    for destination in chosen:
        if destination.path is not None and destination.path.resolve() in inputs:
            raise CliError(ExitCode.USAGE, f"-o {destination.path} is one of the files to read")
    return chosen


async def render_to(destination: Destination, data: bytes, render: Renderer) -> Rendered:
    """Render into `destination`: stdout as it comes, or a temporary file in the target's
    directory renamed over the target once complete (removed on any failure)."""
    if destination.path is None:
        sink = sys.stdout.buffer
        rendered = await render(data, destination.source.name, sink)
        sink.flush()
        return rendered
    target = destination.path
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise CliError(ExitCode.USAGE, f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "wb") as sink:
            rendered = await render(data, destination.source.name, sink)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return rendered


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / (1024 * 1024):.1f} MiB"


async def render_files(
    chosen: Sequence[Destination],
    render: Renderer,
    read: Callable[[Path], bytes],
    *,
    seconds: float,
    note: Callable[[str], None],
) -> ExitCode:
    """Each destination's file, one after another (a document is large: one in memory at a
    time), each within `seconds`; a line per file on stderr (`note`); the worst exit code."""
    codes: list[ExitCode] = []
    for destination in chosen:
        source = destination.source
        began = time.monotonic()
        try:
            data = await asyncio.to_thread(read, source)
            async with asyncio.timeout(seconds):
                rendered = await render_to(destination, data, render)
        except TimeoutError:
            error = CliError(ExitCode.UNAVAILABLE, f"{source}: no result within {seconds:g} s")
        except CliError as failure:
            error = (
                failure
                if failure.message.startswith(f"{source}")
                else CliError(failure.code, f"{source}: {failure.message}")
            )
        else:
            pages = (
                ""
                if rendered.page_count is None
                else f"{rendered.page_count} page{'' if rendered.page_count == 1 else 's'}, "
            )
            where = "stdout" if destination.path is None else str(destination.path)
            note(f"{source}: {pages}{_size(rendered.size)} -> {where} in {time.monotonic() - began:.1f} s")
            codes.append(ExitCode.OK)
            continue
        note(f"ocrmesh: {' '.join(error.message.split())}")
        codes.append(error.code)
    return worst(codes)
