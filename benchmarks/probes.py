"""HTTP probes outside the measured windows (stdlib only), and the environment servers are started with.

A target is ready when the scenario's own request gets a good answer; after a point measured with a client that
does not read the answers (wrk), :func:`check_sample` sends a few requests and checks their bodies.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .procs import Managed

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0
"""Generous: the digits worker imports torch before its first answer."""

Check = Callable[[bytes], bool] | None


def post(url: str, body: bytes, content_type: str, timeout: float) -> tuple[int, bytes]:
    """POST ``body`` and read the whole answer; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def good_answer(status: int, payload: bytes, check: Check) -> bool:
    return 200 <= status < 300 and (check is None or check(payload))


def wait_for_answer(
    managed: Managed, url: str, body: bytes, content_type: str, check: Check, timeout: float = START_TIMEOUT_S
) -> float:
    """Seconds from spawn until ``url`` gave a good answer to ``body``; raises when the process exits first or the
    time runs out (with the end of its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            raise RuntimeError(f"{managed.name} exited with {managed.process.returncode}:\n{managed.log_tail()}")
        try:
            status, payload = post(url, body, content_type, timeout=max(0.1, deadline - time.monotonic()))
        except (OSError, urllib.error.URLError):
            time.sleep(0.01)
            continue
        if good_answer(status, payload, check):
            return time.perf_counter() - managed.spawned_at
        time.sleep(0.01)
    raise TimeoutError(f"{managed.name} did not answer {url} within {timeout:.0f} s:\n{managed.log_tail()}")


def ready_worker_pid(management: str, model: str, timeout: float = START_TIMEOUT_S) -> int:
    """The pid of the model's single READY worker, from the TorchServe describe API."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError, TypeError):
            workers = get_json(f"{management}/models/{model}")[0]["workers"]
            ready = [w["pid"] for w in workers if w["status"] == "READY"]
            if len(ready) == len(workers) == 1:
                return int(ready[0])
        time.sleep(0.05)
    raise TimeoutError(f"model {model} has no READY worker after {timeout:.0f} s")


def effective_batching(management: str, model: str) -> dict[str, Any] | None:
    """``batchSize`` and ``maxBatchDelay`` as the server applied them (the describe API): an archive's
    model-config.yaml wins over config.properties in TorchServe and here, so they can differ from the scenario's."""
    try:
        description = get_json(f"{management}/models/{model}")[0]
        return {"batch_size": description["batchSize"], "max_batch_delay_ms": description["maxBatchDelay"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def check_sample(url: str, body: bytes, content_type: str, check: Check, count: int = 20) -> dict[str, int]:
    """Send ``count`` requests one after another and count the answers that are not good: what a client that does
    not read bodies (wrk) cannot tell."""
    result = {"checked": 0, "mismatches": 0, "non_2xx": 0, "failures": 0}
    for _ in range(count):
        try:
            status, payload = post(url, body, content_type, timeout=30.0)
        except (OSError, urllib.error.URLError):
            result["failures"] += 1
            continue
        result["checked"] += 1
        if not 200 <= status < 300:
            result["non_2xx"] += 1
        elif check is not None and not check(payload):
            result["mismatches"] += 1
    return result


def child_env(workdir: Path) -> dict[str, str]:
    """Our environment, with TMPDIR in the run's directory (the server's pid file goes there), unbuffered output,
    and this checkout on the import path."""
    env = {**os.environ, "TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env
