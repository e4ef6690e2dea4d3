"""The metric log files ``ts_metrics.log`` and ``model_metrics.log``: TorchServe's ``LogMetric`` lines in log4j's
``%d{ISO8601} - %m`` layout, written by a background task.

The request path must not format strings, so an update is only recorded (its time, its value and its
:class:`LineText`, or a finished line) and :class:`MetricLog` formats the lines later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Final

from ..logs import MILLISECOND_STAMPS, rotate
from .text_format import java_double

logger = logging.getLogger("modelserver.metrics")


COMMON_VALUES: Final = {0.0: "0.0", 1.0: "1.0", 2.0: "2.0", 3.0: "3.0"}
"""Values most lines carry (a count's 1.0, a whole millisecond's 0.0), spelled once: a source keeps its whole text
for these in ``bodies``. (A ``-0.0``, equal to ``0.0``, would be written ``0.0``; no metric of the server is a
negative zero.)"""


_FRACTIONS: Final = tuple("." + (f"{n:03d}".rstrip("0") or "0") for n in range(1000))
"""The fraction of a number of thousandths (``.741``, ``.74``, ``.0``), spelled once."""


def spell(value: float) -> str:
    """A value as Java's ``Double.toString`` writes it: the shortest digits that give the double back inside
    [1e-3, 1e7), ``d.dddE<n>`` outside.

    The request path's numbers are whole thousandths (latencies in microseconds to 0.001, ``PredictionTime`` to
    0.01 ms, whole milliseconds), and for those the shortest digits are the thousandths with trailing zeros dropped
    (a decimal of at most 15 significant digits is the only one of that length for its double), made here from two
    integers and a table instead of the general shortest-digits search (a float's repr, some four times the cost).
    """
    if 1e-3 <= value < 1e7:
        thousandths = int(value * 1000.0 + 0.5)  # rounded (the value is positive); round() is a call, this is not
        if thousandths / 1000 == value:
            return str(thousandths // 1000) + _FRACTIONS[thousandths % 1000]
        return repr(float(value))  # an int is spelled as Java spells the double it becomes (5.0)
    return java_double(value)


CHUNK_LINES: Final = 256
"""Lines formatted at once when they pile up faster than the timer takes them: at 20,000 requests a second a 10 ms
tick found some 1,400 lines, about a millisecond of formatting that every answer ready meanwhile waited for (the p99
in ``log`` mode 1.4x Prometheus mode's); this many take some 0.15 ms. The file is handed to the OS by the timer
only."""


class LineText:
    """One series' part of its lines: ``<head><value><tail>`` (``Name.Unit:`` and ``|#dims|#hostname:h``), and that
    whole text made once for each of the :data:`COMMON_VALUES`."""

    __slots__ = ("bodies", "head", "tail")

    def __init__(self, head: str, tail: str) -> None:
        self.head = head
        self.tail = tail
        self.bodies = {value: head + text + tail for value, text in COMMON_VALUES.items()}

    def line(self, value: float) -> str:
        body = self.bodies.get(value)
        if body is None:
            return self.head + spell(value) + self.tail
        return body


class MetricLog:
    """``ts_metrics.log`` or ``model_metrics.log``: ``2024-02-16T21:12:24,801 - <line>,timestamp:<s>``.

    An update is recorded as its time, its value and its :class:`LineText` (or a finished line) appended to three
    lists: no object is made (the floats exist already; an ``array('d')`` would parse each into a double, several
    times the cost of the append) and none the garbage collector tracks; a task started by :meth:`start` formats the
    lines into the file every ``flush_seconds``. The server opens and starts the logs before any request; until
    :meth:`open`, lines are formatted only into ``memory`` (when it is a list; tests). The file rolls over at 100 MB,
    keeping 5 old files, as TorchServe's log4j2.xml does.
    """

    ROLL_BYTES: ClassVar[int] = 100 * 1024 * 1024
    KEEP: ClassVar[int] = 5

    FLUSH_SECONDS: ClassVar[float] = 0.01
    """How often the lines are formatted: under load a request adds about seven lines, so every 50 ms meant thousands
    formatted in one go, a pause of a few ms that doubled the p99 of the answers waiting behind it (8.5-8.9 ms against
    4.6-4.9 ms in Prometheus mode at c=64); every 10 ms the p99 is 5.4-5.8 ms at the same throughput."""
    IDLE_SECONDS: ClassVar[float] = 0.05
    """How often an idle log looks for lines (no line since its last look): in Prometheus mode, where a request writes
    no line, the loop is not woken 100 times a second for nothing."""

    def __init__(
        self, flush_seconds: float = FLUSH_SECONDS, memory: list[str] | None = None, roll_bytes: int = ROLL_BYTES
    ) -> None:
        self.path: Path | None = None
        self.roll_bytes = roll_bytes
        self.memory = memory
        self._times: list[float] = []
        self._values: list[float] = []
        self._sources: list[LineText | str] = []
        self._flush_seconds = flush_seconds
        self._idle_seconds = max(flush_seconds, self.IDLE_SECONDS)
        self._file: Any = None
        self._second = -1
        self._stamp = ""
        self._suffix = ""
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._chunk_soon = False  # a chunk is to be formatted at the loop's next turn
        self._unflushed = False  # chunks were written to the file object since it was last handed to the OS

    def pending(self) -> tuple[list[float], list[float], list[LineText | str]]:
        """Where a :class:`LogSeries` records an update: its time, its value, its :class:`LineText` (the lists are
        cleared in place, so they can be kept)."""
        return self._times, self._values, self._sources

    def write(self, line: str) -> None:
        """A finished line (a backend metric)."""
        self._times.append(time.time())
        self._values.append(0.0)
        self._sources.append(line)
        if len(self._sources) == CHUNK_LINES:
            self.chunk_full()

    def chunk_full(self) -> None:
        """:data:`CHUNK_LINES` lines are waiting (a series tells, when its update makes them so many): they are
        formatted at the loop's next turn, not at the next tick. Before :meth:`start` they wait for a flush."""
        loop = self._loop
        if loop is not None and not self._chunk_soon and not loop.is_closed():  # a loop gone without close(): wait
            self._chunk_soon = True
            loop.call_soon(self._write_chunk)

    def _write_chunk(self) -> None:
        self._chunk_soon = False
        try:
            self.flush(hand_over=False)
        except OSError as err:  # the lines are dropped, the next ones are tried again
            logger.error("Cannot write %s: %s", self.path, err)

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab", buffering=64 * 1024)
        self.path = path

    def start(self) -> None:
        """Flush every ``flush_seconds`` from now on (needs a running event loop)."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._flush_forever(), name="metric-log")

    async def _flush_forever(self) -> None:
        pause = self._idle_seconds
        while True:
            await asyncio.sleep(pause)
            if not self._sources and not self._unflushed:
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

    def flush(self, hand_over: bool = True) -> None:
        """Format the recorded updates into the file, and (``hand_over``) hand it to the OS."""
        text = self._format()
        if self.memory is not None:
            self.memory.extend(text.splitlines(keepends=True))
        if self._file is None:
            return
        if text:
            self._file.write(text.encode("utf-8", "backslashreplace"))
        if not hand_over:
            self._unflushed = True
            return
        self._unflushed = False
        self._file.flush()
        if self._file.tell() >= self.roll_bytes and self.path is not None:
            self._roll(self.path)

    def _format(self) -> str:
        """Every recorded update as its line, joined once. A line is three pieces: the log4j stamp, the series' text
        for the value, the ``timestamp`` field; the stamps are made once per millisecond, which the lines of a busy
        millisecond share."""
        times, values, sources = self._times, self._values, self._sources
        count = len(sources)
        if not count:
            return ""
        parts: list[str] = []
        begins = ends = 0.0  # the millisecond of the stamps: [begins, ends) in milliseconds
        prefix = suffix = ""
        for index in range(count):
            now = times[index] * 1000.0
            if now >= ends or now < begins:  # two comparisons instead of an int() a line
                millisecond = int(now)
                begins = float(millisecond)
                ends = begins + 1.0
                prefix, suffix = self._stamps(millisecond)
            parts.append(prefix)  # compiled, a list's own append is a C call; a bound one is a Python call
            source = sources[index]
            if isinstance(source, str):
                parts.append(source)
            else:  # LineText.line's text, its pieces joined once with the rest instead of concatenated first
                value = values[index]
                body = source.bodies.get(value)
                if body is None:
                    parts.append(source.head)
                    parts.append(spell(value))
                    parts.append(source.tail)
                else:
                    parts.append(body)
            parts.append(suffix)
        del times[:], values[:], sources[:]
        return "".join(parts)

    def _stamps(self, millisecond: int) -> tuple[str, str]:
        """log4j's ``%d{ISO8601} - `` in front of a line, and TorchServe's ``,timestamp:<s>`` after it."""
        second = millisecond // 1000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
            self._suffix = f",timestamp:{second}\n"
        return self._stamp + MILLISECOND_STAMPS[millisecond % 1000] + " - ", self._suffix

    def _roll(self, path: Path) -> None:
        self._file.close()
        try:
            rotate(path, self.KEEP)
        finally:
            self._file = path.open("ab", buffering=64 * 1024)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._loop = None  # a chunk still scheduled formats nothing: flush() below takes every line
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
