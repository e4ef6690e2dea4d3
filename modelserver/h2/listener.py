"""The native gRPC listener: :class:`.protocol.GrpcProtocol` connections on the event loop for one address, with
the interface of :class:`modelserver.grpc_server.GrpcListener` (``start``, ``stop(grace)``, ``port``).

TLS (an ``https://`` address) offers ALPN ``h2``, as gRPC clients require. With several frontends the socket is
bound with SO_REUSEPORT (``reuse_port``), so that they share the port, as their HTTP listeners do.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from ..config import Address, ConfigError
from ..http_limits import HttpLimits
from ..http_server import ConnectionBudget
from .calls import Method
from .limits import Limits
from .protocol import GrpcProtocol

logger = logging.getLogger("modelserver")

TLS_HANDSHAKE_SECONDS = 60.0
"""asyncio's own handshake limit, when no ``header_read_timeout`` is given."""


def snake_case(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name).lstrip("_")


def method_table(tables: Iterable[Any]) -> dict[str, Method]:
    """The methods of ``tables`` (:class:`modelserver.grpc_server.ServiceTable`) by their HTTP/2 path."""
    found: dict[str, Method] = {}
    for table in tables:
        for name, request_type, response_type, client_streams, server_streams in table.methods:
            path = f"/{table.service}/{name}"
            own = name in table.own_wire
            found[path] = Method(
                path,
                getattr(table.implementation, snake_case(name)),
                None if own else request_type.FromString,
                None if own else response_type.SerializeToString,
                client_streams,
                server_streams,
            )
    return found


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["h2"])
    return context


class NativeGrpcListener:
    """One address serving ``tables`` with this server's own HTTP/2."""

    def __init__(
        self,
        name: str,
        address: Address,
        tables: list[Any],
        *,
        max_receive: int,
        max_send: int,
        tls_files: tuple[str, str] | None = None,
        reuse_port: bool = False,
        limits: HttpLimits | None = None,
        budget: ConnectionBudget | None = None,
    ) -> None:
        self.name = name
        self._reuse_port = reuse_port
        self.address = address
        self._handshake_timeout = limits.header_read_timeout if limits is not None else None
        self._limits = Limits(
            method_table(tables),
            max_receive,
            max_send,
            handshake_timeout=self._handshake_timeout,
            write_timeout=limits.write_timeout if limits is not None else None,
        )
        self._budget = budget
        self._tls_files = tls_files
        self._server: asyncio.base_events.Server | None = None
        self._connections: dict[GrpcProtocol, None] = {}  # insertion-ordered: the oldest first
        self.port: int | None = None

    def _protocol(self) -> GrpcProtocol:
        protocol = GrpcProtocol(self._limits, self._closed)
        budget = self._budget
        if budget is not None:
            if not budget.admit():  # at the cap, and no connection idle (HTTP or gRPC) to close for room
                protocol.refused = True  # counted nowhere: closed as soon as it is made
                return protocol
            budget.others[protocol] = None
        self._connections[protocol] = None
        if self.address.is_tls:
            # A TLS connection is counted from its accept; one whose handshake fails is never made (nor lost), so
            # it is forgotten once the handshake's time is up.
            loop = asyncio.get_running_loop()
            loop.call_later(self._handshake_timeout or TLS_HANDSHAKE_SECONDS, self._forget_if_unmade, protocol)
        return protocol

    def _forget_if_unmade(self, protocol: GrpcProtocol) -> None:
        if protocol.transport is None:
            self._closed(protocol)

    def _closed(self, protocol: GrpcProtocol) -> None:
        self._connections.pop(protocol, None)
        if self._budget is not None and self._budget.others.pop(protocol, False) is None:
            self._budget.closed_one()

    async def start(self) -> None:
        context = None
        if self.address.is_tls:
            if self._tls_files is None:
                raise ConfigError(f"{self.name}: https:// gRPC needs certificate_file and private_key_file")
            context = tls_context(*self._tls_files)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol,
                self.address.host,
                self.address.port,
                ssl=context,
                ssl_handshake_timeout=self._handshake_timeout if context is not None else None,
                reuse_port=self._reuse_port or None,
                backlog=1024,
            )
        except OSError as err:
            raise OSError(f"{self.name} gRPC API cannot listen on {self.address}: {err}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("%s gRPC API bound to: %s", self.name, self.address)

    async def stop(self, grace: float) -> None:
        """No new connections or calls (GOAWAY); calls in flight get up to ``grace`` seconds to finish, then are
        cancelled and the connections closed."""
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for protocol in list(self._connections):
            protocol.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(protocol.calls for protocol in self._connections) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for protocol in list(self._connections):
            protocol.close()
        self._connections.clear()
