"""The frames in and out of one worker's socket, on the frontend's event loop (the frontend side of
docs/protocol.md's framing).

Received bytes go straight into the :class:`~workers.frame_decoder.FrameDecoder`'s buffers (a
``BufferedProtocol``); frames sent during one pass of the event loop leave together in one write at
its end. A malformed frame closes the connection: the worker is broken, the frontend is not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from workers.frame_decoder import FrameDecoder
from workers.protocol import ProtocolError, encode_parts

if TYPE_CHECKING:
    from workers.shared_ring import RingReader, RingWriter

logger = logging.getLogger("modelserver.worker")


class FrameChannel(Protocol):
    """What a worker connection and its feed need of a worker's socket: a :class:`WorkerChannel`, or a worker
    group's :class:`~modelserver.worker_group.GroupChannel` standing for the sockets of all its ranks."""

    closed: asyncio.Future[BaseException | None]

    def send(self, message: dict[str, Any], checked: bool = True) -> None: ...

    def close(self) -> None: ...


class WorkerChannel(asyncio.BufferedProtocol):
    """Frames in and out of one worker socket; the kernel writes payloads straight into our buffer."""

    def __init__(
        self,
        on_message: Callable[[dict[str, Any]], None],
        max_frame_size: int,
        rings: tuple[RingWriter, RingReader] | None = None,
    ) -> None:
        self._on_message = on_message
        self._ring: RingWriter | None = rings[0] if rings is not None else None
        """Our end of the shared memory ring the worker reads (:mod:`workers.shared_ring`): large bodies go there."""
        self._decoder = FrameDecoder(max_frame_size, rings[1] if rings is not None else None)
        self._max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[BaseException | None] = self._loop.create_future()
        self._outgoing: list[bytes | bytearray | memoryview] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            messages = self._decoder.buffer_updated(nbytes)
        except ProtocolError as err:
            logger.error("Malformed frame from worker: %s", err)
            self._close(err)
            return
        try:
            for message in messages:
                self._on_message(message)
        except ProtocolError as err:  # a job's answer of the wrong shape (workers.protocol.check_item)
            logger.error("Malformed message from worker: %s", err)
            self._close(err)

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(exc)

    def send(self, message: dict[str, Any], checked: bool = True) -> None:
        """Queue a frame; the frames of one event-loop pass leave together, in order, in one write at its end.

        A result callback that tops up 16 batches then costs one system call (and one wake-up of the worker)
        instead of 16."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._outgoing:
            self._loop.call_soon(self._write_out)
        self._outgoing += encode_parts(message, self._max_frame_size, checked, self._ring)

    def send_now(self, message: dict[str, Any]) -> None:
        """Write a frame at once, after the frames queued before it: backpressure (``pause``) must reach the worker
        before the loop reads on. The loop can read many large frames from a fast worker in one pass, and a frame
        left for the end of the pass let a streaming handler send some ten more pieces first."""
        if self.transport is None or self.transport.is_closing():
            return
        frame = encode_parts(message, self._max_frame_size, True, self._ring)  # first: a refusal loses no queued frame
        frames, self._outgoing = self._outgoing, []
        frames += frame
        self.transport.writelines(frames)

    def _write_out(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if frames and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(frames)

    def close(self) -> None:
        """Close the socket now (our side ends the connection)."""
        self._close(None)

    def _close(self, exc: BaseException | None) -> None:
        if self.transport is not None:
            self.transport.abort()
        if not self.closed.done():
            self.closed.set_result(exc)
