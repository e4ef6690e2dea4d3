"""HTTP probes outside the measured windows (stdlib only), and the environment servers are started with.

A target is ready when the scenario's own request gets a good answer; after a point measured with a client that
does not read the answers (wrk), :func:`check_sample` sends a few requests and checks their bodies (and, for a
scenario with a ``header_check``, their headers).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import grpc_probe
from .procs import Managed
from .scenarios import Scenario

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0
"""Generous: the digits worker imports torch before its first answer."""

Check = Callable[[bytes], bool] | None
HeaderCheck = Callable[[Mapping[str, str], bytes], bool] | None
Headers = tuple[tuple[str, str], ...]


def exchange(
    url: str, body: bytes, content_type: str, timeout: float, headers: Headers = ()
) -> tuple[int, Mapping[str, str], bytes]:
    """POST ``body`` (with ``headers`` besides ``Content-Type``) and read the whole answer: its status, headers
    (looked up without regard to case) and body; an HTTP error status is returned, not raised."""
    sent = {"Content-Type": content_type, **dict(headers)}
    request = urllib.request.Request(url, data=body, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def post(url: str, body: bytes, content_type: str, timeout: float, headers: Headers = ()) -> tuple[int, bytes]:
    """POST ``body`` and read the whole answer; an HTTP error status is returned, not raised."""
    status, _, payload = exchange(url, body, content_type, timeout, headers)
    return status, payload


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def good_answer(
    status: int,
    payload: bytes,
    check: Check,
    headers: Mapping[str, str] | None = None,
    header_check: HeaderCheck = None,
) -> bool:
    if not 200 <= status < 300 or (check is not None and not check(payload)):
        return False
    return header_check is None or header_check(headers or {}, payload)


def wait_for_answer(
    managed: Managed,
    url: str,
    body: bytes,
    content_type: str,
    check: Check,
    timeout: float = START_TIMEOUT_S,
    headers: Headers = (),
    header_check: HeaderCheck = None,
) -> float:
    """Seconds from spawn until ``url`` gave a good answer to ``body``; raises when the process exits first or the
    time runs out (with the end of its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            raise RuntimeError(f"{managed.name} exited with {managed.process.returncode}:\n{managed.log_tail()}")
        try:
            status, answer_headers, payload = exchange(
                url, body, content_type, max(0.1, deadline - time.monotonic()), headers
            )
        except (OSError, urllib.error.URLError):
            time.sleep(0.01)
            continue
        if good_answer(status, payload, check, answer_headers, header_check):
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


def check_sample(
    url: str,
    body: bytes,
    content_type: str,
    check: Check,
    count: int = 20,
    headers: Headers = (),
    header_check: HeaderCheck = None,
) -> dict[str, int]:
    """Send ``count`` requests one after another and count the answers that are not good: what a client that does
    not read bodies (wrk) cannot tell."""
    result = {"checked": 0, "mismatches": 0, "non_2xx": 0, "failures": 0}
    for _ in range(count):
        try:
            status, answer_headers, payload = exchange(url, body, content_type, 30.0, headers)
        except (OSError, urllib.error.URLError):
            result["failures"] += 1
            continue
        result["checked"] += 1
        if not 200 <= status < 300:
            result["non_2xx"] += 1
        elif not good_answer(status, payload, check, answer_headers, header_check):
            result["mismatches"] += 1
    return result


def wait_for_scenario(managed: Managed, url: str, scenario: Scenario, timeout: float = START_TIMEOUT_S) -> float:
    """:func:`wait_for_answer` with the scenario's request, headers and checks (a gRPC scenario's: a call of its
    method, :func:`benchmarks.grpc_probe.wait_for_call`)."""
    if scenario.is_grpc:
        return grpc_probe.wait_for_call(managed, url, scenario.body(), scenario.check, timeout)
    return wait_for_answer(
        managed,
        url,
        scenario.body(),
        scenario.content_type,
        scenario.check,
        timeout,
        headers=scenario.headers,
        header_check=scenario.header_check,
    )


def child_env(workdir: Path) -> dict[str, str]:
    """Our environment, with TMPDIR in the run's directory (the server's pid file goes there), unbuffered output,
    and this checkout on the import path."""
    env = {**os.environ, "TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env
