"""The heap thresholds of the frontend and the workers: set on glibc, a harmless no-op elsewhere."""

from __future__ import annotations

import platform
import sys

import pytest

from workers.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_the_thresholds() -> None:
    assert keep_freed_memory() is True


def test_without_linux_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
