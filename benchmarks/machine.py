"""What a result depends on besides the code under test: the machine, the Python packages, the git state."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("aiohttp", "uvloop", "msgpack", "numpy", "orjson", "kserve", "torch", "matplotlib")
"""In the runner's environment, which is our server's: ``kserve`` there is what our KServe workers import."""
SERVER_PATHS = ("modelserver", "workers", "examples")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout


def git_state() -> dict[str, Any] | None:
    """The commit the server code comes from, and the server files that differ from it (a dirty tree)."""
    try:
        commit = _git("rev-parse", "HEAD").strip()
        status = _git("status", "--porcelain", "--", *SERVER_PATHS)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "changed_server_files": [line[3:] for line in status.splitlines()]}


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def package_versions() -> dict[str, str]:
    return {package: version_of(package) for package in PACKAGES}
