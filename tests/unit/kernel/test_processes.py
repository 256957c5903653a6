"""The supervisor of ocrmesh.platform.processes with toy workers: one supervised process, a
worker that cannot start stops it with its exit code, one that keeps dying before it serves
is given up after a few tries, and one that dies after it served (a crash) is always
replaced, however young.

Each case runs the supervisor in a fresh interpreter (it forks and takes SIGTERM), whose
workers follow a plan, one step per start: `exit:N` returns N without serving, `die` is
SIGKILLed before serving, `crash` is SIGKILLed after `report_serving()`, `serve` serves and
asks the supervisor to stop (SIGTERM to it), then stops cleanly when told."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ocrmesh.platform.processes import report_serving, serve_in_processes

ROOT = Path(__file__).resolve().parents[3]

SUPERVISOR = textwrap.dedent(
    """
    import json, logging, os, signal, sys, time
    from pathlib import Path
    from ocrmesh.platform.processes import report_serving, serve_in_processes

    starts, plan = Path(sys.argv[1]), sys.argv[2:]

    def serve(port):
        with starts.open("a") as file:
            file.write(f"{os.getpid()}\\n")
        step = plan[min(len(starts.read_text().split()), len(plan)) - 1]
        if step.startswith("exit:"):
            return int(step.removeprefix("exit:"))
        if step == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        report_serving()
        if step == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        told = []
        signal.signal(signal.SIGTERM, lambda *_: told.append(True))
        os.kill(os.getppid(), signal.SIGTERM)
        while not told:
            time.sleep(0.01)
        return 0

    class Json(logging.Formatter):
        def format(self, record):
            fields = {k: v for k, v in vars(record).items() if k in ("worker_pid", "exit_code")}
            return json.dumps({"msg": record.getMessage(), **fields})

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(Json())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    code = serve_in_processes(
        1, serve, host="127.0.0.1", port=0, name="toy", stop_timeout=5, supervised=True
    )
    print(json.dumps({"msg": "supervisor exit", "exit_code": code}))
    """
)


def supervise(tmp_path: Path, *plan: str) -> tuple[int, list[int], list[dict[str, Any]]]:
    """Run a supervisor of one worker following `plan`: its exit code, the pids of the
    workers it started, and its log entries."""
    starts = tmp_path / "starts"
    done = subprocess.run(
        [sys.executable, "-c", SUPERVISOR, str(starts), *plan],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert entries[-1]["msg"] == "supervisor exit", done.stdout
    pids = [int(pid) for pid in starts.read_text().split()] if starts.exists() else []
    return entries[-1]["exit_code"], pids, entries


def messages(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["msg"] for entry in entries]


def test_one_process_without_supervision_is_served_in_this_process() -> None:
    ran_in: list[int] = []

    def serve(port: int) -> int:
        ran_in.append(os.getpid())
        report_serving()  # nobody to tell: nothing happens
        return 7

    code = serve_in_processes(1, serve, host="127.0.0.1", port=0, name="toy", stop_timeout=1)

    assert (code, ran_in) == (7, [os.getpid()])


def test_one_supervised_worker_serves_in_a_child_and_stops_cleanly(tmp_path: Path) -> None:
    code, pids, entries = supervise(tmp_path, "serve")

    assert code == 0
    assert len(pids) == 1
    assert pids[0] != os.getpid()
    assert messages(entries)[-2:] == ["all workers stopped", "supervisor exit"]


@pytest.mark.parametrize("exit_code", [2, 3])
def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path, exit_code: int) -> None:
    code, pids, entries = supervise(tmp_path, f"exit:{exit_code}")

    assert code == exit_code
    assert len(pids) == 1, "a worker that cannot start must not be restarted"
    assert "worker cannot start; stopping" in messages(entries)


@pytest.mark.parametrize("step", ["die", "exit:1"])
def test_a_worker_that_keeps_dying_before_it_serves_is_given_up(tmp_path: Path, step: str) -> None:
    code, pids, entries = supervise(tmp_path, step)

    assert code == 1
    assert len(pids) == 6  # the first start and five more, all failed
    assert messages(entries).count("worker died before serving; starting a new one") == 5
    assert "workers keep dying before they serve; stopping" in messages(entries)


def test_a_worker_that_crashes_after_serving_is_always_replaced(tmp_path: Path) -> None:
    # Crashes right after serving (a poisonous document sent again and again) are not a
    # start-up failure: however many and however young, they cost calls, not the service.
    code, pids, entries = supervise(tmp_path, *["crash"] * 8, "serve")

    assert code == 0
    assert len(set(pids)) == 9
    died = [entry for entry in entries if entry["msg"] == "worker died; starting a new one"]
    # The log says which worker died and how (killed by signal 9).
    assert [(entry["worker_pid"], entry["exit_code"]) for entry in died] == [(pid, -9) for pid in pids[:8]]


def test_failed_starts_are_counted_in_a_row_and_forgotten_once_a_worker_serves(tmp_path: Path) -> None:
    # Eight failed starts in all, never more than four in a row.
    code, pids, entries = supervise(tmp_path, *["die"] * 4, "crash", *["die"] * 4, "serve")

    assert code == 0
    assert len(pids) == 10
    assert messages(entries).count("worker died before serving; starting a new one") == 8
