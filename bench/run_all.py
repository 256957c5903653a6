"""`make bench`: run every benchmark of the project, then print one summary table.

    .venv/bin/python -m bench.run_all [--quick]

Each `bench/bench_*.py` runs in its own process as `python -m bench.bench_<name>` (so their
memory figures don't mix) and writes its rows with `--json`. Extra arguments (e.g. `--quick`)
are passed to each.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import Row, format_table, load
from harness.repo import ROOT

HERE = Path(__file__).resolve().parent


def main(extra: list[str]) -> int:
    rows: list[Row] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in sorted(HERE.glob("bench_*.py")):
            out = Path(tmp) / f"{script.stem}.json"
            print(f"\n=== {script.name}", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", f"bench.{script.stem}", "--json", str(out), *extra],
                cwd=ROOT,
                check=False,
            )
            if done.returncode != 0 or not out.exists():
                failed.append(script.name)
                continue
            rows += load(out)
    print("\n=== summary (medians; ratio > 1 means ocrmesh is better than the baseline)\n")
    print(format_table(rows))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
