"""`make soak DURATION=30m`: the fault suite's traffic on a mesh of processes for a long time,
sampled every 30 s (RSS, fds, threads per service, PostgreSQL connections, RabbitMQ channels,
latency). Writes var/soak/<time>.md, .png (RSS and latency over time) and .csv (every
sample), and exits 1 on an RSS slope after warm-up above --max-slope MiB/min, on any 5xx,
or on a lost mail.

    python -m bench.soak --duration 30m
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from harness.faults.soak import plot, run_soak, soak_report, write_samples
from harness.faults.suite import fault_rig, quiet_logs, stop_cleanly_on_sigterm, timestamp
from harness.repo import ROOT
from harness.scratch import postgres_admin_url
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def duration_seconds(text: str) -> float:
    """ "30m", "90s", "1h" or plain seconds."""
    found = _DURATION.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30m, 90s, 1h)")
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--duration", type=duration_seconds, default=duration_seconds("30m"))
    parser.add_argument("--interval", type=duration_seconds, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=duration_seconds, default=None, help="default: a third, at most 5 min"
    )
    parser.add_argument(
        "--max-slope", type=float, default=1.0, help="MiB/min of RSS per service after warm-up"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "soak")
    args = parser.parse_args(argv)
    quiet_logs()
    stop_cleanly_on_sigterm()
    warmup = args.warmup if args.warmup is not None else min(300.0, args.duration / 3)
    rabbitmq_url = os.environ.get("TEST_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    with (
        tempfile.TemporaryDirectory(prefix="ocrmesh-soak-") as scratch,
        fault_rig(Path(scratch), postgres_admin_url=postgres_admin_url(), rabbitmq_url=rabbitmq_url) as rig,
    ):
        result = run_soak(
            rig, duration_s=args.duration, interval_s=args.interval, warmup_s=warmup, max_slope=args.max_slope
        )
    stamp = timestamp()
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / f"{stamp}.png")
    write_samples(result, args.out / f"{stamp}.csv")
    text = soak_report(
        result,
        title=f"Soak run {stamp} ({os.cpu_count()} cores)",
        plot_name=f"{stamp}.png",
    )
    (args.out / f"{stamp}.md").write_text(text)
    sys.stdout.write(text)
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
