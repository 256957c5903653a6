"""Size units, in bytes, for limits and settings (binary prefixes, as the docs write them)."""

from __future__ import annotations

from typing import Final

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB

__all__ = ["GiB", "KiB", "MiB"]
