"""A peer's own virtual environment: one pinned package pip-installed once into the benchmark cache, reused after."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .base import Unavailable


def pinned_venv(venv: Path, package: str, version: str, timeout_s: float, log: Callable[[str], None]) -> Path:
    """The venv's python, with ``package==version`` importable in it (installed now unless it already is)."""
    python = venv / "bin" / "python"
    if installed_version(python, package) != version:
        log(f"installing {package}=={version} into {venv}")
        _run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout_s)
        _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", f"{package}=={version}"], timeout_s)
        if installed_version(python, package) != version:
            raise Unavailable(f"{package}=={version} is not importable in {venv} after pip install")
    return python


def installed_version(python: Path, package: str) -> str | None:
    """The version of ``package`` importable by ``python``, or None."""
    if not python.is_file():
        return None
    code = f"import importlib.metadata, {package}; print(importlib.metadata.version({package!r}))"
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _run(command: list[str], timeout_s: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"`{' '.join(command)}`: {err}") from err
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise Unavailable(f"`{' '.join(command)}` failed ({done.returncode}):\n{tail}")
