"""The HTTP layer's timeouts and caps, read from config.properties (our own keys; TorchServe has none of them).

Every limit has a safe default, so a server nobody tuned still closes stalled sockets, stays under its file
descriptor limit and keeps a slow reader's stream bounded:

=========================  =========  ============================================================================
key                        default    meaning
=========================  =========  ============================================================================
``header_read_timeout``    30         seconds from a request's first byte until its headers are complete
``body_read_timeout``      60         seconds a request body may go without a new byte
``keep_alive_timeout``     75         seconds an idle keep-alive connection stays open
``write_timeout``          60         seconds a response may wait for a client that does not read
``max_connections``        auto       open connections per server; auto = the file descriptor limit less 256
``listen_backlog``         2048       the listen queue (the kernel caps it at ``net.core.somaxconn``)
``stream_buffer_size``     2097152    bytes of a streamed answer held for a slow reader before its worker waits
``max_workers_per_model``  128        the most workers one model version may ask for
``worker_shared_memory``   8388608    bytes of each shared memory ring between the frontend and a worker (0: none)
=========================  =========  ============================================================================
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Mapping
from dataclasses import dataclass

from workers.shared_ring import MAX_CAPACITY as MAX_SHARED_MEMORY
from workers.shared_ring import MIN_CAPACITY as MIN_SHARED_MEMORY

from .config import ConfigError

KEYS = (
    "header_read_timeout",
    "body_read_timeout",
    "keep_alive_timeout",
    "write_timeout",
    "max_connections",
    "listen_backlog",
    "stream_buffer_size",
    "max_workers_per_model",
    "worker_shared_memory",
)
FD_RESERVE = 256
"""File descriptors kept back from connections: workers' sockets and pipes, log files, model files."""
MIN_CONNECTIONS = 16
_ZERO_ALLOWED = frozenset({"max_connections", "worker_shared_memory"})


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_read_timeout: float = 30.0
    body_read_timeout: float = 60.0
    keep_alive_timeout: float = 75.0
    write_timeout: float = 60.0
    max_connections: int = 0
    """0: derived from the file descriptor limit (:func:`connection_cap`)."""
    listen_backlog: int = 2048
    stream_buffer_size: int = 2 * 1024 * 1024
    max_workers_per_model: int = 128
    worker_shared_memory: int = 8 * 1024 * 1024
    """Large bodies between the frontend and a worker cross in shared memory rings of this size, one each way
    (:mod:`workers.shared_ring`); 0 sends them through the socket."""


def from_properties(properties: Mapping[str, str]) -> HttpLimits:
    """The limits configured in ``properties`` (a missing key keeps its default); ConfigError on a bad value."""
    defaults = HttpLimits()
    values: dict[str, float | int] = {}
    for key in KEYS:
        raw = properties.get(key)
        if raw is None or not raw.strip():
            continue
        default = getattr(defaults, key)
        try:
            value = float(raw) if isinstance(default, float) else int(raw.strip())
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {raw!r}") from None
        if value <= 0 and key not in _ZERO_ALLOWED or value < 0:
            raise ConfigError(f"{key}: must be positive, got {raw!r}")
        if key == "worker_shared_memory" and value and not MIN_SHARED_MEMORY <= value <= MAX_SHARED_MEMORY:
            raise ConfigError(f"{key}: 0 (none) or {MIN_SHARED_MEMORY} to {MAX_SHARED_MEMORY} bytes, got {raw!r}")
        values[key] = value
    return HttpLimits(**values)  # type: ignore[arg-type]


def raise_fd_limit() -> int:
    """Lift the soft file descriptor limit to the hard one (as the JVM does for TorchServe); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def connection_cap(limits: HttpLimits) -> int:
    """Open connections allowed per server: the configured cap, never more than the descriptors left after
    ``FD_RESERVE``, so the accept call itself never runs out of descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = max(MIN_CONNECTIONS, soft - FD_RESERVE) if soft != resource.RLIM_INFINITY else 1 << 20
    return min(limits.max_connections, room) if limits.max_connections else room
