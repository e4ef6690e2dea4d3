"""gRPC listeners: grpc.aio servers on the server's own event loop, one per configured address.

``oip_grpc_address`` (default: none, so off) serves the Open Inference Protocol's gRPC API (:mod:`.grpc_oip`),
e.g. ``http://0.0.0.0:8081`` as KServe's ``grpc_port``; ``https://`` serves it over TLS with
``certificate_file``/``private_key_file``. ``grpc_inference_port`` and ``grpc_management_port`` (with
``grpc_*_address`` and ``enable_grpc_ssl``; default: none, so off) serve TorchServe's gRPC inference and management
APIs (:mod:`.grpc_torchserve`, :mod:`.grpc_torchserve_management`).
Messages may be as large as ``max_request_size`` in and ``max_response_size`` out, as on HTTP.

``grpc_transport`` picks what carries the calls: ``native`` (the default), this server's own HTTP/2 on the event
loop (:mod:`.h2`), or ``grpcio``, grpc.aio's server (gRPC's C core and its threads). Both serve the same service
objects through the same :class:`ServiceTable`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Address, ConfigError, parse_address

logger = logging.getLogger("modelserver")

# Worker processes are forked from this one: gRPC's fork handlers are not needed (no child uses gRPC) and, on, log
# a line per fork while the server's threads run.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

OIP_KEY = "oip_grpc_address"
TRANSPORT_KEY = "grpc_transport"
TRANSPORTS = ("native", "grpcio")


def transport(properties: Mapping[str, str]) -> str:
    """The ``grpc_transport`` setting: ``native`` (default) or ``grpcio``."""
    value = (properties.get(TRANSPORT_KEY) or "native").strip().lower()
    if value not in TRANSPORTS:
        raise ConfigError(f"{TRANSPORT_KEY}: expected one of {', '.join(TRANSPORTS)}, got {value!r}")
    return value


@dataclass(frozen=True)
class ServiceTable:
    """A service as a transport serves it: its name, its methods as :func:`workers.grpc_stubs.load` lists them
    (name, request type, response type, client streams, server streams), the object whose snake-case attributes
    implement them, and the methods that (de)serialize their messages themselves: a bytes-like request in (a
    ``bytearray`` for a large one on the native transport), bytes or a list of bytes-like pieces out."""

    service: str
    methods: list[tuple[str, Any, Any, bool, bool]]
    implementation: Any
    own_wire: frozenset[str] = field(default=frozenset())


def oip_address(properties: Mapping[str, str]) -> Address | None:
    """The ``oip_grpc_address`` setting; None (no gRPC) when unset. A bare ``host:port`` means ``http://``."""
    value = (properties.get(OIP_KEY) or "").strip()
    if not value:
        return None
    if "://" not in value and not value.startswith("unix:"):
        value = f"http://{value}"
    address = parse_address(OIP_KEY, value, 8081, 8081)
    if address.is_unix:
        raise ConfigError(f"{OIP_KEY}: gRPC listens on TCP only, got {value!r}")
    return address


def service_handler(table: ServiceTable) -> Any:
    """grpc.aio's method table for ``table``: each method is the implementation's attribute of the method's name
    in snake case, unary or streaming as declared. A method named in ``own_wire`` takes the request's bytes and
    answers bytes, or a list of pieces (joined here: grpc.aio writes bytes): it (de)serializes its messages
    itself."""
    import grpc

    from .grpc_oip_wire import joined

    service, methods, implementation, own_wire = table.service, table.methods, table.implementation, table.own_wire

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    table = {
        name: kinds[client_streams, server_streams](
            getattr(implementation, snake_case(name)),
            request_deserializer=None if name in own_wire else request_type.FromString,
            response_serializer=joined if name in own_wire else response_type.SerializeToString,
        )
        for name, request_type, response_type, client_streams, server_streams in methods
    }
    return grpc.method_handlers_generic_handler(service, table)


def snake_case(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name).lstrip("_")


def metadata_value(context: Any, key: str) -> str | None:
    """A call's metadata value (the first of the key), or None."""
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None


def torchserve_address(properties: Mapping[str, str], api: str) -> Address | None:
    """TorchServe's gRPC ``api`` (``inference`` or ``management``): ``grpc_<api>_address`` (default
    ``127.0.0.1``) and ``grpc_<api>_port``, TLS with ``enable_grpc_ssl=true``. None (not served) unless the port is
    set."""
    key = f"grpc_{api}_port"
    port = (properties.get(key) or "").strip()
    if not port:
        return None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key}: expected a port number, got {port!r}")
    host = (properties.get(f"grpc_{api}_address") or "127.0.0.1").strip()
    tls = (properties.get("enable_grpc_ssl") or "false").strip().lower() == "true"
    return Address("https" if tls else "http", host, int(port))


class GrpcListener:
    """One grpc.aio server serving ``tables`` on ``address``."""

    def __init__(
        self,
        name: str,
        address: Address,
        tables: list[ServiceTable],
        *,
        max_receive: int,
        max_send: int,
        tls_files: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self._handlers = [service_handler(table) for table in tables]
        self._options = [("grpc.max_receive_message_length", max_receive), ("grpc.max_send_message_length", max_send)]
        self._tls_files = tls_files
        self._server: Any = None
        self.port: int | None = None

    async def start(self) -> None:
        import grpc

        server = grpc.aio.server(options=self._options)
        server.add_generic_rpc_handlers(self._handlers)
        host = self.address.host
        target = f"[{host}]:{self.address.port}" if ":" in host else f"{host}:{self.address.port}"
        try:
            if self.address.is_tls:
                if self._tls_files is None:
                    raise ConfigError(f"{self.name}: https:// gRPC needs certificate_file and private_key_file")
                cert, key = (Path(path).read_bytes() for path in self._tls_files)
                self.port = server.add_secure_port(target, grpc.ssl_server_credentials([(key, cert)]))
            else:
                self.port = server.add_insecure_port(target)
        except RuntimeError as err:  # grpcio's "Failed to bind": say which API and address, as for HTTP
            raise OSError(f"{self.name} gRPC API cannot listen on {self.address}: {err}") from None
        if not self.port:
            raise OSError(f"{self.name} gRPC API cannot listen on {self.address}")
        await server.start()
        self._server = server
        logger.info("%s gRPC API bound to: %s", self.name, self.address)

    async def stop(self, grace: float) -> None:
        """No new calls; calls in flight get up to ``grace`` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
