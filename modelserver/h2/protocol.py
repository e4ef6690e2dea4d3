"""gRPC on one HTTP/2 connection, on the event loop: :class:`GrpcProtocol` is the ``asyncio.Protocol`` that feeds
the bytes to :class:`.connection.Connection` and runs a task per call, as grpc.aio does, without grpc's threads.

A call's task runs the service's method with a :class:`.calls.CallContext` and sends its answer: headers, messages
(as the windows and the socket allow: a slow reader holds back its own call, within bounded buffers) and trailers.
A client's RST_STREAM cancels the task (the service sees ``CancelledError``, as on grpc.aio, and a job in a queue
or a worker is cancelled as for an HTTP client that goes away); a passed ``grpc-timeout`` ends the call with
DEADLINE_EXCEEDED and cancels it the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from . import frames as f
from . import grpc_wire as w
from .calls import AbortError, Call, CallContext
from .connection import Connection, H2ConnectionError
from .limits import Limits

logger = logging.getLogger("modelserver.grpc")

SEND_STEP = 256 << 10
"""Once this much DATA is queued, it is written at once and the sender looks at the socket's buffer again."""
DEADLINE_SLACK = 0.05
"""A client that resets a call this close to its deadline, or past it, is cancelling a call it gave up on (its clock
runs ahead of ours): that reset does not count as a rapid reset."""
BIG_MESSAGE = 64 << 10
"""From this size on, an answer's message is sent from its own buffer, its prefix apart."""
QUEUE_LIMIT = 1 << 20
"""A streaming request's whole messages not yet taken by the service, past which the client's window is held."""


class GrpcProtocol(asyncio.BufferedProtocol):
    """One client connection. The socket is read into a buffer of the listener's (``BufferedProtocol``): the frames
    are parsed where they landed, and a request message is copied once, from there to its own buffer."""

    def __init__(self, limits: Limits, on_close: Any = None) -> None:
        self.limits = limits
        self.calls: dict[int, Call] = {}
        self.conn = Connection(self, max_concurrent_streams=limits.max_streams)
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The connection's loop, kept: on Python 3.11 every ``asyncio.get_running_loop()`` (and a
        ``current_task()`` without a loop) is a ``getpid()`` system call, 2-3 of them a call."""
        self.peer = ""
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        self._flush_soon = False
        self.refused = False
        """Over the connection cap: closed as soon as it is made."""
        self._deadline: asyncio.TimerHandle | None = None
        """The preface's deadline, then, while the client reads nothing of what is written, the write deadline."""
        self.draining = False
        self._owing: list[Call] = []
        """Calls that received DATA in the read being parsed: their windows are given back once it is parsed."""

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.refused:
            transport.abort()  # type: ignore[attr-defined]
            return
        self.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        self.peer = f"ipv4:{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        timeout = self.limits.handshake_timeout
        if timeout is not None:
            self._deadline = self.loop.call_later(timeout, self._preface_overdue, timeout)
        self.flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.limits.read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.limits.read_view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """``data`` is read during the call only (its buffer is read into again): the connection copies what
        it keeps."""
        try:
            self.conn.receive(data)
            if self._owing:
                self._give_back()
        except H2ConnectionError as err:
            logger.info("gRPC connection from %s closed: %s (HTTP/2 error %d)", self.peer, err, err.code)
            self.flush()
            if self._paused:  # the client reads nothing: its GOAWAY would wait behind the rest for ever
                self.abort()
            else:
                self.close()
            return
        except Exception:  # a fault of this server's: the connection cannot go on in a known state
            logger.exception("gRPC connection from %s failed", self.peer)
            self.conn.out.append(f.goaway(self.conn.last_stream_id, f.INTERNAL_ERROR))
            self.flush()
            self.close()
            return
        if self.conn.out:  # window updates and replies: written once the loop has run what is ready (the reads
            # that follow this one at once, the answers that finish), not one write each
            self.flush_soon()
        if self._deadline is not None and not self._paused and self.conn.preface_received:
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        for call in list(self.calls.values()):
            self._cancel(call)
        self.calls.clear()
        self._wake()
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        """The socket's buffer is past its high-water mark: the client is not reading. Reading goes on (a client
        may write all its calls before it reads, within the windows it was given, which bound its DATA); what its
        frames make this side queue meanwhile is bounded by the connection (MAX_QUEUED_ACKS), and past
        ``write_timeout`` the connection is dropped."""
        self._paused = True
        timeout = self.limits.write_timeout
        if timeout is not None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self._running_loop().call_later(timeout, self._write_overdue, timeout)

    def resume_writing(self) -> None:
        self._paused = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.conn.acks_read()
        self._wake()

    def _preface_overdue(self, timeout: float) -> None:
        self._deadline = None
        if not self.conn.preface_received:
            logger.info("gRPC connection from %s closed: no HTTP/2 preface within %g s", self.peer, timeout)
            self.abort()

    def _write_overdue(self, timeout: float) -> None:
        self._deadline = None
        if self._paused:
            logger.info(
                "gRPC connection from %s closed: the client read nothing for %g s (write_timeout)", self.peer, timeout
            )
            self.abort()

    def flush(self) -> None:
        """Write what the connection queued: one write (uvloop's ``writelines`` is one ``writev``, no join)."""
        self._flush_soon = False
        out = self.conn.out
        self.conn.out_size = 0
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            if len(out) == 1:
                transport.write(out[0])
            else:
                transport.writelines(out)
            if not self._paused:  # the socket took it (or its buffer is below the high-water mark)
                self.conn.acks_read()
        out.clear()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is None:  # not connected yet (a protocol driven by hand)
            loop = self.loop = asyncio.get_running_loop()
        return loop

    def flush_soon(self) -> None:
        """Flush once the loop has run what is ready: the answers of the calls that finish in this turn of the
        loop (many, with many calls in flight) go out in one write instead of one each."""
        if not self._flush_soon:
            self._flush_soon = True
            self._running_loop().call_soon(self.flush)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def idle(self) -> bool:
        """No call in flight and nothing of an answer left to write: at the connection cap, the connection may be
        closed to make room (a gRPC client connects again when it next needs to). One still in its TLS handshake
        is idle too."""
        if self.calls:
            return False
        transport = self.transport
        return transport is None or (not self.conn.out and transport.get_write_buffer_size() == 0)

    def abort(self) -> None:
        """Close at once, dropping what the client has not read (one not made yet is closed as it is made)."""
        if self.transport is not None:
            self.transport.abort()
        else:
            self.refused = True

    def drain(self) -> None:
        """No new calls (GOAWAY); closed when the last call is over."""
        self.draining = True
        self.conn.goaway()
        self.flush()
        if not self.calls:
            self.close()

    # -- events of the connection -------------------------------------------------------------------

    def on_headers(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool) -> None:
        call = self.calls.get(stream_id)
        if call is not None:  # the client's trailers: its messages are over
            self._remote_end(call)
            return
        path = method_name = content_type = encoding = timeout = ""
        for name, value in headers:
            if name == ":path":
                path = value
            elif name == ":method":
                method_name = value
            elif name == "content-type":
                content_type = value
            elif name == "grpc-encoding":
                encoding = value
            elif name == "grpc-timeout":
                timeout = value
        if method_name != "POST" or not content_type.startswith("application/grpc"):
            status = b"405" if method_name != "POST" else b"415"
            self.conn.send_headers(stream_id, b"\x08\x03" + status, True)  # :status (static entry 8's name)
            return
        method = self.limits.methods.get(path)
        if method is None:
            self._trailers_only(stream_id, w.UNIMPLEMENTED, f"Method not found: {path}")
            return
        if encoding and encoding not in w.ENCODINGS:
            block = w.trailers(
                w.UNIMPLEMENTED,
                f"Compression algorithm '{encoding}' is not supported",
                (("grpc-accept-encoding", w.ACCEPT_ENCODING),),
                only=True,
            )
            self.conn.send_headers(stream_id, block, True)
            return
        deadline = None
        seconds = w.timeout_seconds(timeout) if timeout else None
        if seconds is not None:
            deadline = time.monotonic() + seconds
        context = CallContext(headers, deadline, self.peer)
        call = self.calls[stream_id] = Call(stream_id, method, context, self.limits.max_receive, encoding or "identity")
        loop = self._running_loop()
        if seconds is not None:
            call.timer = loop.call_later(seconds, self._expire, call)
        if method.client_streams:
            call.task = loop.create_task(self._run(call))
        if end_stream:
            self._remote_end(call)

    def on_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool) -> None:
        call = self.calls.get(stream_id)
        if call is None or call.finished:
            return
        if data and not self._read(call, call.reader.feed, data, len(data)):
            return
        if end_stream:
            self._remote_end(call)

    def on_data_run(self, stream_id: int, pieces: list[memoryview]) -> None:
        """Several DATA frames of one call in a row (a large message's): read in one go, their window owed once."""
        call = self.calls.get(stream_id)
        if call is None or call.finished:
            return
        self._read(call, call.reader.feed_many, pieces, sum(map(len, pieces)))

    def _read(self, call: Call, read: Callable[[Any], list[bytes | bytearray]], data: Any, size: int) -> bool:
        """``size`` bytes of the call's DATA through its message reader (``read``); the messages they complete are
        queued for the service, and the window they used is owed to the client. False when the call ended instead (a
        message too large, or compressed against the call's encoding)."""
        try:
            found = read(data)
        except w.MessageTooLarge as err:
            self._end(call, w.RESOURCE_EXHAUSTED, str(err))
            return False
        except w.CompressedMessage as err:
            self._end(call, w.INTERNAL, str(err))
            return False
        if found:
            count = len(call.messages) + len(found)
            if count > 1 and not call.method.client_streams:  # no more is read of a unary call than its message
                self._end(call, w.UNIMPLEMENTED, f"Expected one request message, got {count}")
                return False
            call.messages.extend(found)
            call.queued += sum(map(len, found))
            call.wake()
        if size:
            if not call.owed:
                self._owing.append(call)
            call.owed += size
        return True

    def _give_back(self) -> None:
        """The windows of the calls whose DATA the last read held, once per call and read instead of per frame; a
        streaming call whose service is behind (more than ``QUEUE_LIMIT`` queued) keeps its window shut until it
        takes messages (:meth:`_taken`)."""
        owing, self._owing = self._owing, []
        consume = self.conn.consume
        for call in owing:
            if call.owed and (call.queued <= QUEUE_LIMIT or not call.method.client_streams):
                consume(call.stream_id, call.owed)
                call.owed = 0

    def on_reset(self, stream_id: int, code: int) -> None:
        call = self.calls.pop(stream_id, None)
        if call is not None:
            left = call.context.time_remaining()
            if left is not None and left <= DEADLINE_SLACK:
                self.conn.refund_reset()  # the client's own deadline passed: a cancel, not a rapid reset
            call.finished = True
            self._cancel(call)

    def on_window(self) -> None:
        self._wake()

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        self.draining = True
        if not self.calls:
            self.close()

    # -- calls ---------------------------------------------------------------------------------------

    def _remote_end(self, call: Call) -> None:
        call.remote_done = True
        if call.reader.partial and not call.finished:
            self._end(call, w.INTERNAL, "The request's last message is incomplete")
            return
        if call.task is None and not call.finished:
            call.task = self._running_loop().create_task(self._run(call))
        call.wake()

    def _taken(self, call: Call) -> Any:
        def taken(size: int) -> None:
            if call.owed and call.queued <= QUEUE_LIMIT:
                self.conn.consume(call.stream_id, call.owed)
                call.owed = 0
                self.flush()

        return taken

    async def _run(self, call: Call) -> None:
        method = call.method
        try:
            if method.client_streams:
                request: Any = call.requests(self._taken(call))
            else:
                if len(call.messages) != 1:
                    self._end(call, w.UNIMPLEMENTED, f"Expected one request message, got {len(call.messages)}")
                    return
                message = call.messages.popleft()
                request = method.deserialize(message) if method.deserialize else message
            if method.server_streams:
                async for response in method.call(request, call.context):
                    await self._send(call, response, False)
                context = call.context
                self._end(call, context.code or w.OK, context.details, context.trailing)
            else:
                response = await method.call(request, call.context)
                context = call.context
                if context.code:
                    self._end(call, context.code, context.details, context.trailing)
                elif response is None:
                    self._end(call, w.UNKNOWN, "The servicer answered nothing")
                else:
                    await self._send(call, response, True)
        except AbortError as err:
            self._end(call, err.code, err.details, err.metadata)
        except asyncio.CancelledError:
            if not call.finished:  # the server is stopping
                self._end(call, w.UNAVAILABLE, "The server is shutting down")
            raise
        except Exception as err:  # as grpc.aio answers a servicer's unexpected exception
            logger.exception("gRPC %s failed", method.path)
            self._end(call, w.UNKNOWN, f"Unexpected {type(err)}: {err}")
        finally:
            if call.timer is not None:
                call.timer.cancel()
            if self.calls.get(call.stream_id) is call:
                del self.calls[call.stream_id]
            if self.draining and not self.calls:
                self.close()

    async def _send(self, call: Call, response: Any, last: bool) -> None:
        """One answer message (the call's last, with its OK trailers, when ``last``)."""
        if call.finished:
            raise asyncio.CancelledError
        serialize = call.method.serialize
        message = serialize(response) if serialize else response
        if type(message) is list:  # an own-wire answer in pieces: the large ones written from where they are
            message, size = w.coalesce(message)
            if size < BIG_MESSAGE:
                message = b"".join(message)
        else:
            size = len(message)
        if size > self.limits.max_send:
            raise AbortError(
                w.RESOURCE_EXHAUSTED, f"Sent message larger than max ({size} vs. {self.limits.max_send})", ()
            )
        conn, stream_id = self.conn, call.stream_id
        if not call.headers_sent:
            call.headers_sent = True
            conn.send_headers(stream_id, w.ANSWER_HEADERS, False)
        pieces: list[Any]
        if size < BIG_MESSAGE:
            pieces = [w.frame(message)]
        elif type(message) is list:
            pieces = [w.PREFIX.pack(0, size), *message]
        else:  # the prefix apart: the message is sent from where it is (views), not copied behind it
            pieces = [w.PREFIX.pack(0, size), memoryview(message)]
        for piece in pieces:
            await self._send_piece(call, piece)
        if last:
            call.finished = True
            conn.send_headers(stream_id, w.OK_TRAILERS, True)
        self.flush_soon()

    async def _send_piece(self, call: Call, data: bytes | memoryview) -> None:
        conn, stream_id = self.conn, call.stream_id
        sent, total = 0, len(data)
        stalled_since = -1.0
        while sent < total:
            step = conn.send_data(stream_id, data[sent : sent + SEND_STEP])
            if step < 0:  # reset by the client
                raise asyncio.CancelledError
            sent += step
            if step:
                stalled_since = -1.0
            if conn.out_size >= SEND_STEP and sent < total:  # the piece's last step leaves with what follows it
                self.flush()  # may pause writing (the socket's buffer past its high-water mark)
            while step == 0 or self._paused:  # the windows are closed, or the socket's buffer is full
                self.flush()
                if stalled_since < 0:
                    stalled_since = self._running_loop().time()
                await self._wait_for_client(call, stalled_since)
                step = 1

    async def _wait_for_client(self, call: Call, since: float) -> None:
        """Until the windows or the socket's buffer change; a call whose answer has waited ``write_timeout`` since
        ``since`` is reset (CANCEL) and cancelled, as an HTTP answer stuck that long is."""
        timeout = self.limits.write_timeout
        if timeout is None:
            await self._wait()
        else:
            left = since + timeout - self._running_loop().time()
            try:
                await asyncio.wait_for(self._wait(), max(left, 0.0))
            except TimeoutError:
                if not call.finished:
                    logger.info(
                        "gRPC %s from %s cancelled: the client took none of its answer for %g s (write_timeout)",
                        call.method.path,
                        self.peer,
                        timeout,
                    )
                    call.finished = True
                    self.conn.reset(call.stream_id, f.CANCEL)
                    self.flush_soon()
                raise asyncio.CancelledError from None
        if call.finished:
            raise asyncio.CancelledError

    def _end(self, call: Call, code: int, message: str = "", metadata: Any = ()) -> None:
        """The call's trailers (a trailers-only answer when no headers went out): nothing is sent after them."""
        if call.finished:
            return
        call.finished = True
        block = w.trailers(code, message, metadata, only=not call.headers_sent)
        self.conn.send_headers(call.stream_id, block, True)
        self.flush_soon()
        if call.task is None or call.task.done():
            self.calls.pop(call.stream_id, None)
            if call.timer is not None:
                call.timer.cancel()
        elif call.task is not asyncio.current_task(self._running_loop()):
            call.task.cancel()

    def _trailers_only(self, stream_id: int, code: int, message: str) -> None:
        self.conn.send_headers(stream_id, w.trailers(code, message, only=True), True)

    def _expire(self, call: Call) -> None:
        logger.info("gRPC %s: DEADLINE_EXCEEDED", call.method.path)
        self._end(call, w.DEADLINE_EXCEEDED, "Deadline Exceeded")
        self.calls.pop(call.stream_id, None)

    def _cancel(self, call: Call) -> None:
        call.finished = True
        if call.timer is not None:
            call.timer.cancel()
        if call.task is not None and not call.task.done():
            call.task.cancel()
        call.wake()

    async def _wait(self) -> None:
        """Until the windows or the socket's buffer change (or the connection is lost)."""
        if self.transport is None or self.transport.is_closing():
            raise asyncio.CancelledError
        if self._waiter is None or self._waiter.done():
            self._waiter = self._running_loop().create_future()
        await asyncio.shield(self._waiter)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None
