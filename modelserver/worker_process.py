"""Spawning one worker process with a private socket, and forwarding its output to the log."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from workers.shared_ring import SharedRings
from workers.shared_ring import supported as shared_memory_supported

from .metrics import METRIC_LINE_PREFIXES

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
model_log = logging.getLogger("MODEL_LOG")
logger = logging.getLogger("modelserver.worker")
_warned_shared_memory = False


def shared_rings(capacity: int) -> SharedRings | None:
    """Shared memory for a new worker's large bodies (``worker_shared_memory`` bytes a ring; 0: none). Where the
    system cannot give it, the worker goes without (its bodies travel in the socket), with one warning."""
    global _warned_shared_memory
    if capacity <= 0 or not shared_memory_supported():
        return None
    try:
        return SharedRings.create(capacity)
    except OSError as err:
        if not _warned_shared_memory:
            _warned_shared_memory = True
            logger.warning("No shared memory for workers (%s): large bodies go through their sockets", err)
        return None


async def spawn_worker(
    name: str,
    device: str,
    model_dir: str,
    max_frame_size: int,
    environ: Mapping[str, str] | None = None,
    rank: int | None = None,
    rings: SharedRings | None = None,
) -> tuple[asyncio.subprocess.Process, socket.socket]:
    """Start ``python -m workers`` holding one end of a socketpair; return the process and our end.

    ``rank``: the process is that rank of a worker group (``environ`` then holds the group's variables).
    ``rings``: shared memory for large bodies (:mod:`workers.shared_ring`), which the worker maps too.

    The socket is never on disk and nobody else can connect to it. The worker's cwd is the model
    directory and its ``PYTHONPATH`` starts with it, as in TorchServe, so handler files import
    their neighbours.
    """
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    except BaseException:
        if rings is not None:
            rings.close_fd()  # out of descriptors, say: the retry must not find one fewer
        raise
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (model_dir, _PROJECT_ROOT, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    arguments = ["--fd", str(theirs.fileno()), "--name", name, "--device", device]
    arguments += ["--max-frame-size", str(max_frame_size)]
    if rank is not None:
        arguments += ["--rank", str(rank)]
    inherited = [theirs.fileno()]
    if rings is not None:
        arguments += ["--shared-memory-fd", str(rings.fd), "--shared-memory-size", str(rings.capacity)]
        inherited.append(rings.fd)
    try:
        for sock in (ours, theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            *arguments,
            pass_fds=inherited,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=model_dir,
            env=env,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
        if rings is not None:
            rings.close_fd()  # the worker has its own descriptor now; both keep the mapping
    return process, ours


async def forward_output(
    stream: asyncio.StreamReader | None, prefix: str, on_metric: Callable[[str], None] | None = None
) -> None:
    """Log each line a worker prints, prefixed with its name (``W-9000-echo_1.0-stdout``).

    With ``on_metric``, ``[METRICS]`` lines (``context.metrics``) go to it instead of the log, as TorchServe's
    frontend takes them out of the worker's output.
    """
    if stream is None:
        return
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the reader's limit: take what is there
            line = await stream.read(64 * 1024)
        if not line:
            return
        text = line.decode("utf-8", "replace").rstrip()
        if on_metric is not None and text.startswith(METRIC_LINE_PREFIXES):
            on_metric(text)
            continue
        model_log.info("%s MODEL_LOG - %s", prefix, text)
