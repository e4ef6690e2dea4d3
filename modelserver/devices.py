"""How many GPUs and CPUs this process may use, found without importing torch (the frontend stays light)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

__all__ = ["NVIDIA_SMI_TIMEOUT", "cpu_count", "visible_gpu_count"]

NVIDIA_SMI_TIMEOUT = 5.0
_NVIDIA_SMI_ARGS = ("--query-gpu=index", "--format=csv,noheader")
_NO_DEVICES = frozenset({"-1", "NoDevFiles"})


def visible_gpu_count(environ: Mapping[str, str]) -> int:
    """Count the GPUs a worker would see.

    ``CUDA_VISIBLE_DEVICES``, when set, decides: its non-empty comma-separated entries are counted, up to the
    first ``-1`` (CUDA ignores every device after an invalid one); an empty value, ``-1`` or ``NoDevFiles``
    means none. Otherwise ``nvidia-smi`` is asked, if it is on ``environ``'s ``PATH``; any failure means none.
    """
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _count_visible_devices(visible)
    return _count_nvidia_smi_gpus(environ)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask), or all of them where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _count_visible_devices(value: str) -> int:
    count = 0
    for entry in value.split(","):
        device = entry.strip()
        if device in _NO_DEVICES:
            break
        if device:
            count += 1
    return count


def _count_nvidia_smi_gpus(environ: Mapping[str, str]) -> int:
    executable = shutil.which("nvidia-smi", path=environ.get("PATH", os.defpath))
    if executable is None:
        return 0
    try:
        completed = subprocess.run(
            [executable, *_NVIDIA_SMI_ARGS],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            env=dict(environ),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    if completed.returncode != 0:
        return 0
    return sum(1 for line in completed.stdout.splitlines() if line.strip())
