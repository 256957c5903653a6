"""`ocrmesh ocr FILE...`: every file through one recognizer (the gateway's stream, or
ocr_svc over gRPC), at most `concurrency` at a time, each event handed to the output as it
arrives; the exit status is the worst of the files' (ocrmesh_cli.errors.worst)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Final

from ocrmesh.rules.ocr_events import CompletedEvent, ErrorEvent, OcrEvent
from ocrmesh_cli.errors import CliError, ExitCode, exit_code_for_http, worst
from ocrmesh_cli.output import OcrOutput

# (image bytes, file name) -> its events
Recognizer = Callable[[bytes, str], AsyncGenerator[OcrEvent, None]]

# Larger than any limit a gateway or ocr_svc is likely configured with (10 MiB by default);
# it only keeps this client from reading a huge file into memory to send it.
MAX_IMAGE_BYTES: Final = 32 * 1024 * 1024
# A busy service (429 / RESOURCE_EXHAUSTED with a retry-after) is asked again this many
# times, waiting what it said, when that is at most MAX_RETRY_WAIT_S.
MAX_BUSY_RETRIES: Final = 3
MAX_RETRY_WAIT_S: Final = 30.0


def read_image(path: Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The file's bytes. Raises CliError: usage when it cannot be read, rejected when it is
    empty or larger than `max_bytes` (nothing is sent then)."""
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise CliError(ExitCode.USAGE, f"{path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise CliError(ExitCode.REJECTED, f"{path}: larger than {max_bytes} bytes; not sent")
    if not data:
        raise CliError(ExitCode.REJECTED, f"{path}: the file is empty")
    return data


class _Busy(Exception):
    """The service said "later" before the call produced anything: safe to ask again."""

    def __init__(self, error: CliError, wait: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


async def _stream_once(path: Path, data: bytes, recognize: Recognizer, output: OcrOutput) -> None:
    """Relay one call's events to `output`, up to its `completed` event. Every failure is
    a CliError whose message starts with the file's path."""
    relayed = completed = False
    try:
        async with contextlib.aclosing(recognize(data, path.name)) as events:
            async for event in events:
                if completed:
                    continue  # nothing follows `completed`; read on to the stream's own end
                if isinstance(event, ErrorEvent):
                    code = exit_code_for_http(event.status)
                    raise CliError(code, f"{event.detail} (HTTP {event.status})")
                output.event(path, event)
                relayed = True
                completed = isinstance(event, CompletedEvent)
        # Leaving at `completed` would cut the call off before its status: the server would
        # see a cancelled call instead of a finished one.
        if not completed:
            raise CliError(ExitCode.FAILURE, "the stream ended without a result")
    except CliError as error:
        failure = CliError(error.code, f"{path}: {error.message}", retry_after=error.retry_after)
        if failure.retry_after is not None and not relayed:
            raise _Busy(failure, failure.retry_after) from None
        raise failure from None


async def recognize_file(path: Path, recognize: Recognizer, output: OcrOutput, *, seconds: float) -> ExitCode:
    """One file, start to end, within `seconds` per attempt; its exit code."""
    try:
        data = await asyncio.to_thread(read_image, path)
        for attempt in range(MAX_BUSY_RETRIES + 1):
            try:
                async with asyncio.timeout(seconds):
                    await _stream_once(path, data, recognize, output)
                return ExitCode.OK
            except _Busy as busy:
                if busy.wait > MAX_RETRY_WAIT_S or attempt == MAX_BUSY_RETRIES:
                    raise busy.error from None
                await asyncio.sleep(busy.wait)
        raise AssertionError("unreachable")  # pragma: no cover
    except TimeoutError:
        error = CliError(ExitCode.UNAVAILABLE, f"{path}: no result within {seconds:g} s")
    except CliError as failure:
        error = failure
    output.failed(path, error)
    return error.code


async def recognize_files(
    paths: Sequence[Path], recognize: Recognizer, output: OcrOutput, *, concurrency: int, seconds: float
) -> ExitCode:
    """Every file in `paths`, at most `concurrency` at once, each within `seconds` per
    attempt; the worst exit code."""
    pending = iter(paths)  # shared by the workers: each takes the next file when it is free
    codes: list[ExitCode] = []

    async def worker() -> None:
        for path in pending:
            codes.append(await recognize_file(path, recognize, output, seconds=seconds))

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(concurrency, len(paths)))):
            group.create_task(worker())
    return worst(codes)
