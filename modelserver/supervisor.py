"""The supervisor of ``frontend_processes`` > 1: starts the frontends, routes their control messages, restarts one
that dies, and stops them all on SIGTERM (docs/scaling.md).

It serves no request itself. It is the process of the pid file (``modelserver --stop`` signals it), makes the
token authorization keys once (every frontend accepts the same keys), and prints ``Model server started.`` when
every frontend has bound its listeners. Each frontend runs ``python -m modelserver.frontend SOCKET INDEX`` in a
session of its own (a Ctrl-C reaches the supervisor alone, which stops the frontends in order) and gets the
resolved configuration over the control socket.

A frontend that exits while the server runs is logged and started again after :data:`RESTART_DELAY` seconds; it
takes the registered models from a running frontend. More than :data:`MAX_RESTARTS` exits within
:data:`RESTART_WINDOW` seconds stop the server (exit 1): a frontend that cannot live is a broken installation, not
a passing fault. A frontend that fails before the server has started stops the start, with its exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import auth
from .config import ServerConfig
from .control import ControlChannel
from .control_hub import Hub
from .frontend_plan import frontend_count

logger = logging.getLogger("modelserver.supervisor")

STARTED_LINE = "Model server started."
RESTART_DELAY = 1.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
SOCKET_PATH_ROOM = 90
"""A Unix socket's path has 107 bytes at most; ``/control.sock`` takes 13."""
STOP_SECONDS = 120.0
"""How long a stop waits for the frontends (each drains for up to 30 s, then stops its workers) before killing."""


@dataclass
class _Frontend:
    index: int
    process: asyncio.subprocess.Process | None = None
    channel: ControlChannel | None = None
    restart: bool = False
    started: bool = False
    exits: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.count = config.frontend_processes
        self.frontends = [_Frontend(index) for index in range(self.count)]
        self.hub = Hub(self.count, self._hello, self._started)
        self._setup = self._setup_config()
        self._announced = False
        self._stopping = False
        self._stop = asyncio.Event()
        self._gone = asyncio.Event()
        self._exit_code = 0
        self._socket_path = ""

    def _setup_config(self) -> dict[str, Any]:
        config = self.config
        authorization = auth.from_config(config)  # takes the fixed token out of the environment the frontends inherit
        return {
            "properties": dict(config.properties),
            "cwd": os.getcwd(),
            "ncs": not config.config_snapshots,
            "config_file": config.config_file,
            "auth": None if authorization is None else authorization.shared(),
        }

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        logger.info("Starting %s", frontend_count(self.config.properties).describe())
        directory = _private_directory()
        self._socket_path = os.path.join(directory, "control.sock")
        server = await loop.create_unix_server(self.hub.connection, self._socket_path)
        try:
            for frontend in self.frontends:
                await self._spawn(frontend)
            await self._stop.wait()
            await self._stop_all()
        finally:
            server.close()
            shutil.rmtree(directory, ignore_errors=True)
        logger.info("Model server stopped.")
        return self._exit_code

    # -- frontends -------------------------------------------------------------------------------------------------

    async def _spawn(self, frontend: _Frontend) -> None:
        if self._stopping:
            return
        frontend.started = False
        frontend.channel = None
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelserver.frontend",
            self._socket_path,
            str(frontend.index),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        frontend.process = process
        logger.info("Frontend %d started (pid %d)", frontend.index, process.pid)
        asyncio.get_running_loop().create_task(self._watch(frontend, process))

    def _hello(self, index: int, pid: int, channel: ControlChannel) -> None:
        frontend = self.frontends[index]
        if frontend.process is None or frontend.process.pid != pid:
            logger.error("Control connection of frontend %d from pid %d, not its process: closed", index, pid)
            channel.close()
            return
        frontend.channel = channel
        channel.send({"kind": "setup", "config": self._setup, "restart": frontend.restart, "count": self.count})

    def _started(self, index: int) -> None:
        frontend = self.frontends[index]
        frontend.started = True
        if frontend.restart:
            logger.info("Frontend %d serves again", index)
        if not self._announced and all(f.started for f in self.frontends):
            self._announced = True
            print(STARTED_LINE, flush=True)

    async def _watch(self, frontend: _Frontend, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if frontend.process is not process:
            return
        frontend.process = None
        if self._stopping:
            if all(f.process is None for f in self.frontends):
                self._gone.set()
            return
        how = f"signal {-code}" if code < 0 else f"status {code}"
        if not self._announced:
            logger.error("Frontend %d exited with %s before the server started: stopping", frontend.index, how)
            self._exit_code = code if code > 0 else 1
            self._request_stop()
            return
        now = time.monotonic()
        frontend.exits = [t for t in frontend.exits if now - t < RESTART_WINDOW] + [now]
        if len(frontend.exits) > MAX_RESTARTS:
            logger.error(
                "Frontend %d exited with %s, its %d-th exit in %d s: stopping the server",
                frontend.index,
                how,
                len(frontend.exits),
                RESTART_WINDOW,
            )
            self._exit_code = 1
            self._request_stop()
            return
        logger.error("Frontend %d exited with %s; starting it again in %g s", frontend.index, how, RESTART_DELAY)
        frontend.restart = True
        await asyncio.sleep(RESTART_DELAY)
        await self._spawn(frontend)

    # -- stopping --------------------------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        if self._stopping:
            logger.warning("Second stop signal: the frontends exit now")
            self._signal_all(signal.SIGTERM)
            return
        self._request_stop()

    def _request_stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._stop.set()

    def _signal_all(self, sig: int) -> None:
        for frontend in self.frontends:
            if frontend.process is not None and frontend.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    frontend.process.send_signal(sig)

    async def _stop_all(self) -> None:
        """SIGTERM to every frontend (each drains as a single server does), then wait for them all."""
        logger.info("Stopping: every frontend drains its in-flight requests")
        if all(f.process is None for f in self.frontends):
            return
        self._signal_all(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._gone.wait(), STOP_SECONDS)
        except TimeoutError:
            logger.error("Frontends still running %d s after SIGTERM: killing them", STOP_SECONDS)
            self._signal_all(signal.SIGKILL)
            await self._gone.wait()


def _private_directory() -> str:
    """A new directory of mode 0700 (only this user connects to the socket in it), in ``$TMPDIR`` unless the socket's
    path would be too long for a Unix socket there."""
    directory = tempfile.mkdtemp(prefix="modelserver-")
    if len(directory) > SOCKET_PATH_ROOM:
        os.rmdir(directory)
        directory = tempfile.mkdtemp(prefix="modelserver-", dir="/tmp")
    return directory


async def supervise(config: ServerConfig) -> int:
    return await Supervisor(config).run()
