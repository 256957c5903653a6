"""glibc's mmap threshold is fixed so that a page's large buffers go back to the OS."""

from __future__ import annotations

import platform

import pytest

from ocrmesh.platform.memory import return_large_buffers_to_the_os


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_threshold_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert return_large_buffers_to_the_os() is True


def test_an_operator_setting_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert return_large_buffers_to_the_os() is False
