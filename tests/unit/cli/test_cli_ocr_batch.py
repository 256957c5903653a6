"""`ocrmesh ocr` without a network: the gateway's own NDJSON parses back into the events
(one model, ocrmesh.rules.ocr_events), every output mode prints each line as it arrives,
and several files run at most `concurrency` at once, retry a busy service, and exit with
the worst code."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from rich.console import Console

from gateway.ocr_events import encode_ndjson
from ocrmesh.rules.ocr_events import CompletedEvent, ErrorEvent, LineEvent, OcrEvent, StartedEvent, Timings
from ocrmesh_cli.batch import Recognizer, read_image, recognize_files
from ocrmesh_cli.errors import CliError, ExitCode
from ocrmesh_cli.events import parse_event
from ocrmesh_cli.output import JsonOutput, RichOutput, TextOutput

TIMINGS = {"decode_ms": 1.0, "detect_ms": 2.0, "recognize_ms": 3.0, "total_ms": 6.0}


def events_for(*texts: str) -> list[OcrEvent]:
    lines = [
        LineEvent(index=i, text=t, confidence=0.9, box=[(0, 0), (1, 0), (1, 1), (0, 1)])
        for i, t in enumerate(texts)
    ]
    return [
        StartedEvent(engine="scripted", image_width=10, image_height=10),
        *lines,
        CompletedEvent(full_text="\n".join(texts), line_count=len(texts), timings=Timings(**TIMINGS)),
    ]


def test_the_gateways_ndjson_lines_parse_back_into_the_same_events() -> None:
    gateway_events: list[OcrEvent] = [
        StartedEvent(engine="rapidocr", image_width=640, image_height=480),
        LineEvent(index=0, block=0, text="Hello", confidence=0.98, box=[(1, 2), (3, 2), (3, 4), (1, 4)]),
        CompletedEvent(full_text="Hello", line_count=1, timings=Timings(**TIMINGS)),
        ErrorEvent(status=504, detail="the ocr service did not answer in time"),
    ]
    assert [parse_event(encode_ndjson(event)) for event in gateway_events] == gateway_events


def test_unknown_and_blank_events_are_skipped_and_garbage_is_a_clear_failure() -> None:
    assert parse_event(b"") is None
    assert parse_event(b'{"type": "progress", "percent": 50}') is None
    for garbage in (b"<html>", b'{"type": "line"}', b"[1, 2]"):
        with pytest.raises(CliError) as raised:
            parse_event(garbage)
        assert raised.value.code == ExitCode.FAILURE


def scripted(per_file: dict[str, list[OcrEvent] | CliError]) -> tuple[Recognizer, dict[str, int]]:
    """A recognizer that plays each file's events (or raises its error), and counts the
    calls in flight at once."""
    state = {"in_flight": 0, "most": 0}

    async def recognize(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
        state["in_flight"] += 1
        state["most"] = max(state["most"], state["in_flight"])
        try:
            script = per_file[filename]
            if isinstance(script, CliError):
                raise script
            for event in script:
                await asyncio.sleep(0.001)
                yield event
        finally:
            state["in_flight"] -= 1

    return recognize, state


def image_files(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(b"\x89PNG fake")
        paths.append(path)
    return paths


def test_text_output_prints_only_the_lines_and_names_the_file_when_there_are_several(tmp_path: Path) -> None:
    paths = image_files(tmp_path, "a.png", "b.png")
    recognize, _ = scripted({"a.png": events_for("one", "two"), "b.png": events_for("three")})
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        recognize_files(
            paths, recognize, TextOutput(several=True, stdout=out, stderr=err), concurrency=2, seconds=5
        )
    )
    assert code == ExitCode.OK
    assert sorted(out.getvalue().splitlines()) == sorted(
        [f"{paths[0]}: one", f"{paths[0]}: two", f"{paths[1]}: three"]
    )
    assert err.getvalue() == ""


def test_json_output_keeps_each_files_events_in_order_and_ends_a_failed_file_with_an_error(
    tmp_path: Path,
) -> None:
    paths = image_files(tmp_path, "good.png", "bad.png")
    recognize, _ = scripted(
        {
            "good.png": events_for("x", "y"),
            "bad.png": CliError(ExitCode.REJECTED, "not an image (HTTP 415)"),
        }
    )
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(recognize_files(paths, recognize, JsonOutput(out, err), concurrency=2, seconds=5))
    assert code == ExitCode.REJECTED
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    good = [r["type"] for r in records if r["file"] == str(paths[0])]
    assert good == ["started", "line", "line", "completed"]
    [bad] = [r for r in records if r["file"] == str(paths[1])]
    detail = f"{paths[1]}: not an image (HTTP 415)"
    assert bad == {"type": "error", "file": str(paths[1]), "exit_code": 4, "detail": detail}
    assert err.getvalue() == f"ocrmesh: {detail}\n"


def test_an_error_event_in_the_stream_fails_the_file_with_its_statuss_code(tmp_path: Path) -> None:
    [path] = image_files(tmp_path, "slow.png")
    script: list[OcrEvent] = [
        *events_for("a")[:2],
        ErrorEvent(status=504, detail="the ocr service did not answer in time"),
    ]
    recognize, _ = scripted({"slow.png": script})
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        recognize_files(
            [path], recognize, TextOutput(several=False, stdout=out, stderr=err), concurrency=1, seconds=5
        )
    )
    assert code == ExitCode.UNAVAILABLE
    assert out.getvalue() == "a\n"
    assert "did not answer in time (HTTP 504)" in err.getvalue()


def test_no_more_files_than_the_concurrency_are_in_flight(tmp_path: Path) -> None:
    names = [f"{i}.png" for i in range(7)]
    paths = image_files(tmp_path, *names)
    recognize, state = scripted({name: events_for("t") for name in names})
    out = io.StringIO()
    code = asyncio.run(
        recognize_files(paths, recognize, TextOutput(several=True, stdout=out), concurrency=3, seconds=5)
    )
    assert code == ExitCode.OK
    assert state["most"] == 3
    assert len(out.getvalue().splitlines()) == 7


def test_a_busy_service_is_asked_again_after_the_wait_it_names(tmp_path: Path) -> None:
    [path] = image_files(tmp_path, "p.png")
    attempts = 0

    async def busy_once(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise CliError(ExitCode.UNAVAILABLE, "busy", retry_after=0)
        for event in events_for("done"):
            yield event

    out = io.StringIO()
    code = asyncio.run(
        recognize_files([path], busy_once, TextOutput(several=False, stdout=out), concurrency=1, seconds=5)
    )
    assert (code, attempts, out.getvalue()) == (ExitCode.OK, 2, "done\n")


def test_a_file_that_takes_too_long_is_unavailable(tmp_path: Path) -> None:
    [path] = image_files(tmp_path, "p.png")

    async def hangs(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
        await asyncio.sleep(10)
        yield events_for()[0]

    err = io.StringIO()
    code = asyncio.run(
        recognize_files([path], hangs, TextOutput(several=False, stderr=err), concurrency=1, seconds=0.05)
    )
    assert code == ExitCode.UNAVAILABLE
    assert "no result within 0.05 s" in err.getvalue()


def test_an_empty_or_oversized_file_is_rejected_before_anything_is_sent(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * 11)
    for path, limit in ((empty, 10), (big, 10)):
        with pytest.raises(CliError) as raised:
            read_image(path, max_bytes=limit)
        assert raised.value.code == ExitCode.REJECTED


def test_a_stream_is_read_to_its_end_after_completed_not_cut_off(tmp_path: Path) -> None:
    # Cancelling a Recognize call between `completed` and its status crashed ocr_svc: the
    # client reads on to the end instead.
    [path] = image_files(tmp_path, "p.png")
    ended = False

    async def then_ends(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
        nonlocal ended
        for event in events_for("done"):
            yield event
        await asyncio.sleep(0.01)  # the status after the last message
        ended = True

    out = io.StringIO()
    code = asyncio.run(
        recognize_files([path], then_ends, TextOutput(several=False, stdout=out), concurrency=1, seconds=5)
    )
    assert (code, ended, out.getvalue()) == (ExitCode.OK, True, "done\n")


def test_the_default_output_prints_lines_on_stdout_and_the_progress_and_summaries_on_stderr(
    tmp_path: Path,
) -> None:
    paths = image_files(tmp_path, "a.png", "b.png")
    recognize, _ = scripted({"a.png": events_for("[bold]not markup[/bold]"), "b.png": events_for("two")})
    stdout, stderr = io.StringIO(), io.StringIO()
    output = RichOutput(
        total=2,
        progress=True,
        stdout=Console(file=stdout, width=40, soft_wrap=True),
        stderr=Console(file=stderr, force_terminal=True, width=40, soft_wrap=True),
    )
    with output:
        code = asyncio.run(recognize_files(paths, recognize, output, concurrency=2, seconds=5))
    assert code == ExitCode.OK
    assert sorted(stdout.getvalue().splitlines()) == sorted(
        [f"{paths[0]}: [bold]not markup[/bold]", f"{paths[1]}: two"]
    )
    assert f"{paths[0]}: 1 line in 0.0 s" in stderr.getvalue()
    assert "2/2" in stderr.getvalue()  # the progress bar
