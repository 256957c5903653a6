"""Give big transient buffers back to the OS when they are freed: ocr_svc's page tensors,
auth_svc's Argon2 working memory.

glibc serves a block larger than its mmap threshold with mmap at first, but after the first
one is freed it raises the threshold to that size (up to 32 MiB) and serves the next ones
from its heaps, which keep the memory after free: the process's RSS steps up, late and by
chance, to a plateau it never leaves. Fixing the threshold keeps such blocks on mmap.

ocr_svc: onnxruntime (its memory arena is off in rapidocr's configuration) allocates each
intermediate tensor with malloc. Detection on a large page takes tensors of tens of MB;
glibc serves blocks that large with mmap at first, but after the first one is freed it
raises its mmap threshold to that size (up to 32 MiB) and serves the next ones from its
heaps, which keep the memory after free. Measured on 300 dpi pages (docs/ocr.md): the
process keeps about 130 MB more after one detection (16 with a fixed 1 MiB threshold), and
under sustained load of such pages (two workers) its RSS peaked at 690 MiB, median 546,
against 470 and 352 with a fixed 1 MiB threshold (4 MiB: 586 and 439), at about 5 % more
CPU per page (page faults on fresh mappings). Small blocks stay on the heaps.

auth_svc: each Argon2 hash takes a 19 MiB block (AUTH_ARGON2_MEMORY_KIB). Without a fixed
threshold a process kept about 38 MiB after a few hashes on two threads (26 MiB with it), and
a 20-minute soak saw auth_svc's RSS step by 20-31 MiB once, at minute 5, 10 or 13 by chance,
then stay flat; with it a hash costs about 42 ms instead of 33 (page faults on the fresh
block), docs/reliability.md, "Memory over time".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# mallopt(3) parameter number of M_MMAP_THRESHOLD in glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_buffers_to_the_os(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes for this process, unless the
    environment already sets it (MALLOC_MMAP_THRESHOLD_). False where that is not possible
    (not glibc) or was not done."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    log.debug("malloc mmap threshold", extra={"bytes": threshold, "set": done})
    return done
