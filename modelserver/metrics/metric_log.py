"""The metric log files ``ts_metrics.log`` and ``model_metrics.log``: TorchServe's ``LogMetric`` lines in log4j's
``%d{ISO8601} - %m`` layout, written by a background task.

The request path must not format strings, so an update is only recorded (its time, its value and where the line's
text comes from) and :class:`MetricLog` formats the lines later. A source is anything with a ``head`` and a
``tail`` (:class:`modelserver.metrics.series.LogSeries`): the line is ``head + value + tail``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .text_format import java_double

logger = logging.getLogger("modelserver.metrics")


COMMON_VALUES = {0.0: "0.0", 1.0: "1.0", 2.0: "2.0", 3.0: "3.0"}
"""Values most lines carry, spelled once: a float's repr costs more than the lookup. (A ``-0.0``, equal to ``0.0``,
would be written ``0.0``; no metric of the server is a negative zero.)"""


class LineSource(Protocol):
    """What an update's line is made of: ``<head><value><tail>`` (``Name.Unit:`` and ``|#dims|#hostname:h``)."""

    head: str
    tail: str


class MetricLog:
    """``ts_metrics.log`` or ``model_metrics.log``: ``2024-02-16T21:12:24,801 - <line>,timestamp:<s>``.

    An update is recorded as its time, its value and its series (or its finished line) appended to three lists: no
    object is made (the floats exist already; an ``array('d')`` would parse each into a double, several times the
    cost of the append) and none the garbage collector tracks; a task started by :meth:`start` formats the
    lines into the file every ``flush_seconds``. The server opens and starts the logs before any request; until
    :meth:`open`, lines are formatted only into ``memory`` (when it is a list; tests). The file rolls over at 100 MB,
    keeping 5 old files, as TorchServe's log4j2.xml does.
    """

    ROLL_BYTES = 100 * 1024 * 1024
    KEEP = 5

    FLUSH_SECONDS = 0.01
    """How often the lines are formatted: under load a request adds about seven lines, so every 50 ms meant thousands
    formatted in one go, a pause of a few ms that doubled the p99 of the answers waiting behind it (8.5-8.9 ms against
    4.6-4.9 ms in Prometheus mode at c=64); every 10 ms the p99 is 5.4-5.8 ms at the same throughput."""
    IDLE_SECONDS = 0.05
    """How often an idle log looks for lines (no line since its last look): in Prometheus mode, where a request writes
    no line, the loop is not woken 100 times a second for nothing."""

    def __init__(self, flush_seconds: float = FLUSH_SECONDS, memory: list[str] | None = None) -> None:
        self.path: Path | None = None
        self.memory = memory
        self._times: list[float] = []
        self._values: list[float] = []
        self._sources: list[LineSource | str] = []
        self._flush_seconds = flush_seconds
        self._idle_seconds = max(flush_seconds, self.IDLE_SECONDS)
        self._file: Any = None
        self._second = -1
        self._stamp = ""
        self._task: asyncio.Task[None] | None = None

    def appenders(self) -> tuple[Callable[[float], None], Callable[[float], None], Callable[[Any], None]]:
        """How a :class:`LogSeries` records an update: the time, the value, itself (the lists are cleared in place)."""
        return self._times.append, self._values.append, self._sources.append

    def write(self, line: str) -> None:
        """A finished line (a backend metric)."""
        self._times.append(time.time())
        self._values.append(0.0)
        self._sources.append(line)

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab", buffering=64 * 1024)
        self.path = path

    def start(self) -> None:
        """Flush every ``flush_seconds`` from now on (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever(), name="metric-log")

    async def _flush_forever(self) -> None:
        pause = self._idle_seconds
        while True:
            await asyncio.sleep(pause)
            if not self._sources:
                pause = self._idle_seconds
                continue
            pause = self._flush_seconds
            try:
                self.flush()
            except OSError as err:  # the lines are dropped, the next ones are tried again
                logger.error("Cannot write %s: %s", self.path, err)

    def lines(self) -> list[str]:
        """Flush, then what ``memory`` holds."""
        self.flush()
        return list(self.memory or ())

    def flush(self) -> None:
        """Format the recorded updates into the file and hand it to the OS."""
        text = self._format()
        if self.memory is not None:
            self.memory.extend(text.splitlines(keepends=True))
        if self._file is None:
            return
        self._file.write(text.encode("utf-8", "backslashreplace"))
        self._file.flush()
        if self._file.tell() >= self.ROLL_BYTES and self.path is not None:
            self._roll(self.path)

    def _format(self) -> str:
        """Every recorded update as its line. One Python step per line gathers the line's five parts; the text is then
        made by a single ``%`` over all of them, in C (about a fifth of formatting each line on its own)."""
        times, values, sources = self._times, self._values, self._sources
        count = len(sources)
        if not count:
            return ""
        parts: list[Any] = []
        add = parts.extend
        spelled = COMMON_VALUES.get
        millisecond, prefix, suffix = -1, "", ""
        for now, value, source in zip(times, values, sources, strict=True):
            if int(now * 1000) != millisecond:  # lines of the same millisecond share their timestamps
                millisecond = int(now * 1000)
                prefix, suffix = self._stamps(millisecond)
            if source.__class__ is str:
                add((prefix, source, "", "", suffix))
                continue
            text = spelled(value)  # the commonest values (a count's 1.0, a whole millisecond's 0.0) spelled once
            if text is None:  # Java's Double.toString switches to d.dddE<n> outside [1e-3, 1e7)
                text = value if 1e-3 <= value < 1e7 else java_double(value)
            add((prefix, source.head, text, source.tail, suffix))
        del self._times[:], self._values[:], self._sources[:]
        return ("%s%s%s%s%s" * count) % tuple(parts)  # a float's %s is its repr: the shortest round-trip digits

    def _stamps(self, millisecond: int) -> tuple[str, str]:
        """log4j's ``%d{ISO8601} - `` in front of a line, and TorchServe's ``,timestamp:<s>`` after it."""
        second = millisecond // 1000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        return f"{self._stamp},{millisecond % 1000:03d} - ", f",timestamp:{second}\n"

    def _roll(self, path: Path) -> None:
        self._file.close()
        for index in range(self.KEEP - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))
        self._file = path.open("ab", buffering=64 * 1024)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
