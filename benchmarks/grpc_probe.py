"""gRPC probes outside the measured windows, the twins of :mod:`benchmarks.probes` for the gRPC scenarios: wait
until a target answers the scenario's call correctly, settle it between runs, and check a sample of answers after
a point (the load generator counts answers and their bytes but does not decode them).

A gRPC target's URL is ``http://127.0.0.1:PORT/<service>/<method>``: the address and the method's path, as the
load generator takes it. grpcio's synchronous client, one channel per probe.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .procs import Managed

START_TIMEOUT_S = 120.0
MAX_MESSAGE = 64 * 1024 * 1024
Check = Callable[[bytes], bool] | None


def split_url(url: str) -> tuple[str, str]:
    """``(host:port, /service/method)`` of a gRPC target's URL."""
    parts = urlsplit(url)
    return parts.netloc, parts.path


@contextlib.contextmanager
def _method(url: str) -> Any:
    import grpc

    target, path = split_url(url)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(target, options=options) as channel:
        yield channel.unary_unary(path)


def call(url: str, body: bytes, timeout: float) -> bytes:
    """One call; the answer's serialized message (grpc.RpcError on a failed call)."""
    with _method(url) as method:
        return method(body, timeout=timeout)


def wait_for_call(managed: Managed, url: str, body: bytes, check: Check, timeout: float = START_TIMEOUT_S) -> float:
    """Seconds from spawn until a call of ``url`` got a good answer; raises when the process exits first or the time
    runs out (with the end of its log)."""
    import grpc

    deadline = time.monotonic() + timeout
    last = ""
    with _method(url) as method:
        while time.monotonic() < deadline:
            if managed.process.poll() is not None:
                raise RuntimeError(f"{managed.name} exited with {managed.process.returncode}:\n{managed.log_tail()}")
            try:
                answer = method(body, timeout=max(0.1, min(10.0, deadline - time.monotonic())))
            except grpc.RpcError as err:
                last = f"{err.code()}: {err.details()}"  # type: ignore[attr-defined]
                time.sleep(0.02)
                continue
            if check is None or check(answer):
                return time.perf_counter() - managed.spawned_at
            last = f"an answer the check rejects ({len(answer)} bytes)"
            time.sleep(0.02)
    raise TimeoutError(f"{managed.name} did not answer {url} within {timeout:.0f} s ({last}):\n{managed.log_tail()}")


def settle(url: str, body: bytes, timeout: float) -> None:
    """One call, its failure ignored: the target has worked off what the last run left."""
    import grpc

    with contextlib.suppress(grpc.RpcError):
        call(url, body, timeout)


def check_sample(url: str, body: bytes, check: Check, count: int = 20) -> dict[str, int]:
    """``count`` calls one after another: failed calls (``non_2xx``: a gRPC status other than OK) and answers the
    check rejects (``mismatches``), in the shape of :func:`benchmarks.probes.check_sample`."""
    import grpc

    result = {"checked": 0, "mismatches": 0, "non_2xx": 0, "failures": 0}
    with _method(url) as method:
        for _ in range(count):
            try:
                answer = method(body, timeout=30.0)
            except grpc.RpcError:
                result["non_2xx"] += 1
                continue
            result["checked"] += 1
            if check is not None and not check(answer):
                result["mismatches"] += 1
    return result
