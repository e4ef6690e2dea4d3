"""The load generator for a run: wrk when it is installed (or can be), else our aiohttp client; the same one for
every target, and the report says which and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from . import loadgen, wrk
from .install import ensure_wrk
from .loadgen import LoadResult, LoadSpec
from .targets.base import Log


@dataclass(frozen=True)
class Client:
    name: str
    """``wrk`` or ``aiohttp``."""
    description: str
    measure: Callable[[LoadSpec], LoadResult]
    checks_bodies: bool
    """Whether every answer's body is checked during the load; if not, the runner checks a sample afterwards."""
    note: str = ""
    """Why this client was chosen, for the report."""


WRK = Client("wrk", "wrk, one thread, Lua POST script, body read from a file (benchmarks.wrk)", wrk.measure, False)
AIOHTTP = Client("aiohttp", "aiohttp client on uvloop (benchmarks.loadgen)", loadgen.measure, True)


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
