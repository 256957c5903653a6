"""`make faults`: the fault suite (harness/faults, docs/reliability.md). Starts the mesh as
processes with its own database and queue, puts traffic on it, breaks its dependencies one
after another (PostgreSQL restarted and slowed, RabbitMQ stopped, workers and the notifier
killed, SMTP down, the mail spool full), writes a markdown table to var/faults/<time>.md and
stdout, and exits 1 when a fault misses its target.

    python -m bench.faults                      # every fault
    python -m bench.faults --only auth-worker smtp --short
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from harness.faults.scenarios import FAULTS, FaultPlan
from harness.faults.suite import fault_rig, quiet_logs, report, run_faults, stop_cleanly_on_sigterm, timestamp
from harness.repo import ROOT
from harness.scratch import postgres_admin_url
from ocrmesh.rules.endpoints import DEFAULT_RABBITMQ_URL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(FAULTS), default=list(FAULTS), help="faults to run, in order"
    )
    parser.add_argument("--short", action="store_true", help="the short outages of `make test`")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "faults")
    args = parser.parse_args(argv)
    quiet_logs()
    stop_cleanly_on_sigterm()
    plan = FaultPlan.short() if args.short else FaultPlan()
    rabbitmq_url = os.environ.get("TEST_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    with (
        tempfile.TemporaryDirectory(prefix="ocrmesh-faults-") as scratch,
        fault_rig(Path(scratch), postgres_admin_url=postgres_admin_url(), rabbitmq_url=rabbitmq_url) as rig,
    ):
        results = run_faults(rig, args.only, plan)
    stamp = timestamp()
    text = report(
        results,
        title=f"Fault run {stamp} ({'short' if args.short else 'full'})",
        notes=[
            f"Machine: {os.cpu_count()} cores. Mesh: auth_svc 2 workers, ocr_svc 1 supervised worker, "
            "gateway 1 worker; traffic: 2 registrations/s, 0.5 logins/s, 10 /auth/me/s, "
            "2 OCR streams/s (one at a time)."
        ],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}.md").write_text(text)
    sys.stdout.write(text)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
