"""`make bench`: run every benchmark of the project, then print one summary table.

    .venv/bin/python -m bench.run_all [--quick]

Each `bench/bench_*.py`, and each module of `MODULES`, runs in its own process as `python -m
bench.<name>` (so their memory figures don't mix) and writes its rows with `--json`. Extra
arguments (e.g. `--quick`) are passed to each.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import Row, format_table, load
from harness.repo import ROOT

HERE = Path(__file__).resolve().parent
# Benchmarks named otherwise than bench_*.py: documents through ocr_svc (docs/bench.md).
MODULES = ("documents",)


def main(extra: list[str]) -> int:
    rows: list[Row] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        modules = [script.stem for script in sorted(HERE.glob("bench_*.py"))] + list(MODULES)
        for module in modules:
            out = Path(tmp) / f"{module}.json"
            print(f"\n=== {module}.py", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", f"bench.{module}", "--json", str(out), *extra],
                cwd=ROOT,
                check=False,
            )
            if done.returncode != 0 or not out.exists():
                failed.append(f"{module}.py")
                continue
            rows += load(out)
    print("\n=== summary (medians; ratio > 1 means ocrmesh is better than the baseline)\n")
    print(format_table(rows))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
