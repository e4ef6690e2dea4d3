"""Shared fixtures for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture
def isolated_imports(tmp_path: Path):
    """Handler module names repeat across tests: forget modules loaded from tmp dirs and restore sys.path."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    yield
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if file.startswith(str(tmp_path)):
            del sys.modules[name]
