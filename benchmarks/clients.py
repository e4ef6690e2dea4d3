"""The load generators for a run: for HTTP, wrk when it is installed (or can be), else our aiohttp client; for the
gRPC scenarios, h2load. The same one for every target, and the report says which and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from . import h2load, loadgen, wrk
from .install import ensure_h2load, ensure_wrk
from .loadgen import LoadResult, LoadSpec
from .targets.base import Log


@dataclass(frozen=True)
class Client:
    name: str
    """``wrk``, ``aiohttp`` or ``h2load``."""
    description: str
    measure: Callable[[LoadSpec], LoadResult]
    checks_bodies: bool
    """Whether every answer's body is checked during the load; if not, the runner checks a sample afterwards."""
    note: str = ""
    """Why this client was chosen, for the report."""


WRK = Client("wrk", "wrk, one thread, Lua POST script, body read from a file (benchmarks.wrk)", wrk.measure, False)
AIOHTTP = Client("aiohttp", "aiohttp client on uvloop (benchmarks.loadgen)", loadgen.measure, True)
H2LOAD = Client(
    "h2load", "h2load, one thread, one HTTP/2 connection, unary gRPC calls (benchmarks.h2load)", h2load.measure, False
)


def choose_client(requested: str, log: Log) -> Client:
    """``auto``: wrk if it is on PATH or can be installed, else aiohttp. ``wrk``: wrk or an error. ``aiohttp``."""
    if requested == "aiohttp":
        return _noted(AIOHTTP, "requested with --client aiohttp")
    reason = ensure_wrk(log)
    if reason is None:
        return _noted(WRK, "wrk is installed" if requested == "auto" else "requested with --client wrk")
    if requested == "wrk":
        raise SystemExit(f"--client wrk: {reason}")
    log(f"wrk is not available ({reason}): using the aiohttp client, which can limit the bare echo's ceiling")
    return _noted(AIOHTTP, f"fallback: {reason}")


def _noted(client: Client, note: str) -> Client:
    return replace(client, note=note)


def choose_grpc_client(log: Log) -> Client | str:
    """h2load (installed now if it can be), or the reason there is none (the gRPC scenarios are then skipped)."""
    reason = ensure_h2load(log)
    if reason is not None:
        return reason
    return _noted(H2LOAD, h2load.version())
