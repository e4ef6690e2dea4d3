"""Log files in ``LOG_LOCATION`` (default ``logs/`` in the working directory), as TorchServe's log4j2.xml has them.

* ``ts_log.log``: the server log, the same lines as stdout.
* ``model_log.log``: what workers print (the ``MODEL_LOG`` logger); these lines also reach stdout and
  ``ts_log.log``, as log4j's additivity sends them there in TorchServe.
* ``access_log.log``: one line per request, TorchServe's format
  ``2024-02-16T21:12:24,801 - /127.0.0.1:53450 "GET /ping HTTP/1.1" 200 3`` (client, request line, status, duration
  in ms). It is written by the HTTP layer (:mod:`modelserver.http_server`) after the response is sent (status 499,
  as nginx logs it, when the client went away first), into a 64 KiB buffer that is flushed at most a second later;
  the logging module is not involved, so a request costs about a microsecond. Unlike TorchServe, access lines are
  not copied to stdout.

Each file rolls over at 100 MB, keeping 5 old files (``.1`` ... ``.5``).
"""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Final

__all__ = [
    "ACCESS_LOG",
    "LOG_FORMAT",
    "MODEL_LOG",
    "AccessLogFile",
    "access_log",
    "close",
    "setup_console",
    "setup_files",
]

LOG_FORMAT = "%(asctime)s [%(levelname)-5s] %(name)s - %(message)s"
SERVER_LOG_FILE = "ts_log.log"
MODEL_LOG_FILE = "model_log.log"
ACCESS_LOG_FILE = "access_log.log"
MODEL_LOG = "MODEL_LOG"
ACCESS_LOG = "ACCESS_LOG"
ROLL_BYTES: Final = 100 * 1024 * 1024
KEEP_FILES: Final = 5
ACCESS_BUFFER: Final = 64 * 1024
ACCESS_FLUSH_SECONDS: Final = 1.0

_access: AccessLogFile | None = None


def setup_console() -> None:
    """The server log on stdout, before the configuration is known."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)


def setup_files(log_location: str) -> None:
    """Open the three log files in ``log_location`` (created if missing). A directory that cannot be used is
    reported on stderr and the server runs with stdout only."""
    global _access
    directory = Path(log_location)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        server_file = _rolling(directory / SERVER_LOG_FILE)
        model_file = _rolling(directory / MODEL_LOG_FILE)
        access = AccessLogFile(directory / ACCESS_LOG_FILE)
    except OSError as err:
        print(f"modelserver: cannot write log files in {log_location}: {err.strerror}", file=sys.stderr)
        return
    logging.getLogger().addHandler(server_file)
    logging.getLogger(MODEL_LOG).addHandler(model_file)
    close()
    _access = access
    atexit.register(close)


def _rolling(path: Path) -> logging.Handler:
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=ROLL_BYTES, backupCount=KEEP_FILES, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def access_log() -> AccessLogFile | None:
    """``access_log.log``, when the log files are set up."""
    return _access


def close() -> None:
    """Flush and close the access log (also run at exit)."""
    global _access
    if _access is not None:
        _access.close()
        _access = None


MILLISECOND_STAMPS: Final = tuple(f",{ms:03d}" for ms in range(1000))
"""The ``,SSS`` end of log4j's ``%d{ISO8601}`` for each millisecond, spelled once (the access and metric logs)."""


def rotate(path: Path, keep: int) -> None:
    """log4j's rollover of a closed log file: ``path`` becomes ``path.1``, ``path.1`` ``path.2``..., ``keep`` old files
    at most. The caller reopens ``path`` whatever happens here (``finally``), so a rename the system refuses never
    leaves it writing to a closed file."""
    for index in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


class AccessLogFile:
    """``access_log.log``: lines go to a buffer, flushed by a timer at most ``flush_seconds`` later."""

    def __init__(self, path: Path, flush_seconds: float = ACCESS_FLUSH_SECONDS, roll_bytes: int = ROLL_BYTES) -> None:
        self.path = path
        self._flush_seconds = flush_seconds
        self._roll_bytes = roll_bytes
        self._file = self._open()
        self._second = -1
        self._stamp = ""
        self._timer: asyncio.TimerHandle | None = None

    def _open(self) -> io.TextIOWrapper:
        # surrogateescape gives back the raw bytes of a request path that was not UTF-8
        return self.path.open("a", buffering=ACCESS_BUFFER, encoding="utf-8", errors="surrogateescape")

    def stamp(self) -> str:
        """Now, as log4j's ``%d{ISO8601}`` prints it in local time: ``2024-02-16T21:12:24,801``."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        return self._stamp + MILLISECOND_STAMPS[int((now - second) * 1000)]

    def write(self, line: str) -> None:
        self._file.write(line)
        if self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._timer = loop.call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self._file.closed:
            return
        try:
            self._file.flush()
            if self._file.tell() >= self._roll_bytes:
                self._roll()
        except OSError as err:  # reported; the lines go on into the file as it is
            logging.getLogger("modelserver").error("Cannot write %s: %s", self.path, err)

    def _roll(self) -> None:
        self._file.close()
        try:
            rotate(self.path, KEEP_FILES)
        finally:
            self._file = self._open()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._file.closed:
            self._file.close()
