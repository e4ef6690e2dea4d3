"""The HTTP server of one listening address: accepting, the connection cap, deadlines, the access log and the drain.

Accepting is ours rather than the event loop's (``add_reader`` on the listening socket, then
``connect_accepted_socket``) for two reasons: the loop's own accept drops connections silently when the process runs
out of file descriptors, and it cannot refuse politely at a cap. Here an accept error is logged (once a minute) and
accepting pauses briefly; at ``max_connections`` an idle connection is closed to make room, or the new one is
refused, with one log line when the cap is first reached.

Deadlines cost a request nothing: a sweep every ``TICK`` seconds compares each connection's stamps with the
timeouts (:mod:`modelserver.http_limits`), and the stamps come from :attr:`HttpServer.clock`, which the sweep itself
advances. The sweep also refreshes the ``Date`` header line.

Drain (:meth:`HttpServer.drain`): stop accepting, answer what every connection already received (the last answer
with ``Connection: close``), close idle connections, and return as soon as no connection is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from email.utils import formatdate
from typing import Any, Final

from . import logs
from .http_connection import BODY, HEADERS, IDLE, READ_SIZE, ConnectionHost, HttpConnection
from .http_limits import HttpLimits
from .http_request import HttpRequest
from .listener import Listener

logger = logging.getLogger("modelserver.http")

TICK: Final = 0.25
ACCEPT_BATCH: Final = 64
ACCEPT_RETRY_SECONDS: Final = 0.1
ACCEPT_LOG_SECONDS: Final = 60.0
NO_IDLE_SECONDS: Final = 0.05
IDLE_CLOSE_DELAY: Final = 0.02
"""At drain, idle connections close after this pause: a request already in the socket's buffer is still answered."""
_CLIENT_ERRORS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
"""Accept errors about one client that gave up before we took its connection: nothing to log or wait for."""


class ConnectionBudget:
    """The connection cap, shared by every server of the process (they share its file descriptors)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: dict[HttpConnection, None] = {}  # insertion-ordered: the oldest first
        self.others: dict[Any, None] = {}
        """Connections of the native gRPC listeners (``idle`` and ``abort()`` as an HTTP connection's): counted
        against the cap, and closed to make room when idle, as HTTP ones are."""
        self.warned = False
        self._no_idle_until = 0.0

    def admit(self) -> bool:
        """Room for one more connection, closing the oldest idle one if that is what it takes. A search that found
        none is not repeated for ``NO_IDLE_SECONDS``: a flood of connects at the cap costs no scan each."""
        if len(self.open) + len(self.others) < self.cap:
            return True
        if not self.warned:
            self.warned = True
            logger.warning(
                "Connection cap reached: %d connections are open (max_connections); idle ones are closed to make "
                "room, new ones refused while none is idle",
                self.cap,
            )
        now = time.monotonic()
        if now < self._no_idle_until:
            return False
        for connection in self.open:
            if connection.idle and connection.reading != BODY and not connection.closed:
                connection.abort()
                self.open.pop(connection, None)
                return True
        for other in self.others:
            if other.idle:
                other.abort()
                self.others.pop(other, None)
                return True
        self._no_idle_until = now + NO_IDLE_SECONDS
        return False

    def closed_one(self) -> None:
        """A connection was taken out of :attr:`open` or :attr:`others`."""
        count = len(self.open) + len(self.others)
        if self.warned and count < self.cap * 0.9:
            self.warned = False
            logger.info("Below the connection cap again: %d connections open", count)


class HttpServer(ConnectionHost):
    """Serves ``listener`` on one listening socket."""

    def __init__(
        self,
        listener: Listener,
        limits: HttpLimits,
        budget: ConnectionBudget,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.listener = listener
        self.limits = limits
        self.budget = budget
        self.ssl = ssl_context
        self.loop = asyncio.get_running_loop()
        self.observers = listener.observers
        self.clock = self.loop.time()
        self.date_line = _date_line()
        self.connections: set[HttpConnection] = set()
        self.read_view = memoryview(bytearray(READ_SIZE))
        """The read buffer of every connection of this server: the kernel writes a read straight into it, and the
        connection parses it before the loop reads again (what the parser hands on, it copies)."""
        self.timing = logs.access_log() is not None
        self._socks: list[socket.socket] = []
        self._accepting = False
        self._last_accept_error = -ACCEPT_LOG_SECONDS
        self._sweeper: asyncio.TimerHandle | None = None
        self._empty: asyncio.Event | None = None
        self._draining = False
        self._handshakes: set[asyncio.Task[object]] = set()

    # -- accepting ---------------------------------------------------------------------------------------------------

    def serve(self, socks: list[socket.socket]) -> None:
        """Start accepting on bound, listening sockets."""
        for sock in socks:
            sock.setblocking(False)
        self._socks = list(socks)
        self._resume_accepting()
        self._sweeper = self.loop.call_later(TICK, self._sweep)

    def _resume_accepting(self) -> None:
        if self._socks and not self._accepting and not self._draining:
            self._accepting = True
            for sock in self._socks:
                self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self._socks:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in _CLIENT_ERRORS:
                    continue
                self._accept_failed(err)
                return
            if not self.budget.admit():
                conn.close()
                continue
            self._start(conn)

    def _accept_failed(self, err: OSError) -> None:
        now = time.monotonic()
        if now - self._last_accept_error >= ACCEPT_LOG_SECONDS:
            self._last_accept_error = now
            logger.error(
                "Cannot accept a connection on the %s address: %s (open connections: %d)",
                self.listener.name,
                err.strerror or err,
                len(self.budget.open) + len(self.budget.others),
            )
        # Out of descriptors (EMFILE) or memory: the connection stays in the listen queue; try again shortly rather
        # than spin on a socket that keeps failing. Deadlines meanwhile close stalled connections.
        self._pause_accepting()
        self.loop.call_later(ACCEPT_RETRY_SECONDS, self._resume_accepting)

    def _start(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The connection is counted from here, before any handshake, so the cap holds during a TLS handshake too.
        handshake = self.loop.create_task(self._connect(conn))
        self._handshakes.add(handshake)
        handshake.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: HttpConnection(self),
                conn,
                ssl=self.ssl,
                ssl_handshake_timeout=self.limits.header_read_timeout if self.ssl else None,
            )
        except (TimeoutError, OSError, ssl.SSLError) as err:
            logger.debug("Connection dropped before it was set up: %s", err)
            conn.close()

    # -- connections ---------------------------------------------------------------------------------------------

    def opened(self, connection: HttpConnection) -> None:
        self.connections.add(connection)
        self.budget.open[connection] = None
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        # TorchServe prints the remote address as Java's InetSocketAddress does: ``/127.0.0.1:53450``.
        connection.peer = f"/{peer[0]}:{peer[1]}" if isinstance(peer, (tuple, list)) and len(peer) >= 2 else "0.0.0.0"
        if self._draining:
            connection.start_drain()

    def closed(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        self.budget.open.pop(connection, None)
        self.budget.closed_one()
        if self._empty is not None and not self.connections:
            self._empty.set()

    def answered(self, connection: HttpConnection, request: HttpRequest, status: int) -> None:
        sink = logs.access_log()
        if sink is not None:
            millis = int((self.loop.time() - request.started) * 1000)
            sink.write(
                f'{sink.stamp()} - {connection.peer} "{request.method} {request.raw_path} HTTP/{request.version}" '
                f"{status} {millis}\n"
            )

    def cancelled(self, connection: HttpConnection, request: HttpRequest) -> None:
        """The client went away before its answer was complete: 499 in the access log, as nginx writes it (the core
        logs the request id of a cancelled inference)."""
        logger.debug(
            "Client %s went away before the answer to %s %s was complete",
            connection.peer,
            request.method,
            request.raw_path,
        )
        sink = logs.access_log()
        if sink is not None:
            self._access_line(sink, connection, request, 499)

    def _access_line(
        self, sink: logs.AccessLogFile, connection: HttpConnection, request: HttpRequest, status: int
    ) -> None:
        millis = int((self.loop.time() - request.started) * 1000)
        sink.write(
            f'{sink.stamp()} - {connection.peer} "{request.method} {request.raw_path} HTTP/{request.version}" '
            f"{status} {millis}\n"
        )

    # -- deadlines -----------------------------------------------------------------------------------------------

    def _sweep(self) -> None:
        now = self.clock = self.loop.time()
        self.date_line = _date_line()
        limits = self.limits
        expired: list[HttpConnection] = []
        for connection in self.connections:
            if connection.write_paused:
                if now - connection.write_stamp > limits.write_timeout:
                    expired.append(connection)
                continue
            reading = connection.reading
            waited = now - connection.read_stamp
            if reading == IDLE:
                if waited > limits.keep_alive_timeout and connection.idle:
                    expired.append(connection)
            elif (
                waited > (limits.header_read_timeout if reading == HEADERS else limits.body_read_timeout)
                and connection.timed_read
            ):
                expired.append(connection)
        for connection in expired:
            logger.debug("Deadline passed on a connection from %s (state %d)", connection.peer, connection.reading)
            connection.expire()
        self._sweeper = self.loop.call_later(TICK, self._sweep)

    # -- stopping ------------------------------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        self._draining = True
        self._pause_accepting()
        for sock in self._socks:
            sock.close()
        self._socks = []

    async def drain(self, timeout: float) -> None:
        """Answer what was received, close every connection, within ``timeout`` seconds (then cut the rest)."""
        self.stop_accepting()
        self._empty = asyncio.Event()
        for connection in list(self.connections):
            if not connection.idle:
                connection.start_drain()
        await asyncio.sleep(IDLE_CLOSE_DELAY)
        for connection in list(self.connections):
            connection.start_drain()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), timeout)
        for connection in list(self.connections):
            connection.abort()
        for handshake in list(self._handshakes):
            handshake.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


def _date_line() -> str:
    return f"Date: {formatdate(usegmt=True)}\r\n"


def listening_sockets(host: str, port: int, backlog: int, reuse_port: bool = False) -> list[socket.socket]:
    """Bound, listening TCP sockets for ``host:port``, one per address the name has (``SO_REUSEADDR``, and IPv6
    sockets IPv6-only, as asyncio's ``create_server`` makes them). ``reuse_port``: ``SO_REUSEPORT`` too, so that
    every frontend process binds the same address and the kernel spreads the connections over them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def unix_socket(path: str, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
