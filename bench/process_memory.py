"""This process's resident memory (Linux /proc), for the benchmarks' memory rows: the
peak so far, restarting the peak, and the current resident set."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> None:
    """Linux: restart the peak (VmHWM) from the current resident set."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def current_rss_mib() -> float:
    # Linux: the second field of /proc/self/statm is the resident set, in pages.
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
