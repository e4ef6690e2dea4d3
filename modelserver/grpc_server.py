"""gRPC listeners: grpc.aio servers on the server's own event loop, one per configured address.

``oip_grpc_address`` (default: none, so off) serves the Open Inference Protocol's gRPC API
(:mod:`.grpc_oip`), e.g. ``http://0.0.0.0:8081`` as KServe's ``grpc_port``; ``https://`` serves it over TLS with
``certificate_file``/``private_key_file``. Messages may be as large as ``max_request_size`` in and
``max_response_size`` out, as on HTTP.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Address, ConfigError, parse_address

logger = logging.getLogger("modelserver")

# Worker processes are forked from this one: gRPC's fork handlers are not needed (no child uses gRPC) and, on, log
# a line per fork while the server's threads run.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

OIP_KEY = "oip_grpc_address"


def oip_address(properties: Mapping[str, str]) -> Address | None:
    """The ``oip_grpc_address`` setting; None (no gRPC) when unset. A bare ``host:port`` means ``http://``."""
    value = (properties.get(OIP_KEY) or "").strip()
    if not value:
        return None
    if "://" not in value:
        value = f"http://{value}"
    address = parse_address(OIP_KEY, value, 8081, 8081)
    if address.is_unix:
        raise ConfigError(f"{OIP_KEY}: gRPC listens on TCP only, got {value!r}")
    return address


class GrpcListener:
    """One grpc.aio server serving ``handlers`` on ``address``."""

    def __init__(
        self,
        name: str,
        address: Address,
        handlers: list[Any],
        *,
        max_receive: int,
        max_send: int,
        tls_files: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self._handlers = handlers
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
        if self.address.is_tls:
            if self._tls_files is None:
                raise ConfigError(f"{self.name}: https:// gRPC needs certificate_file and private_key_file")
            cert, key = (Path(path).read_bytes() for path in self._tls_files)
            self.port = server.add_secure_port(target, grpc.ssl_server_credentials([(key, cert)]))
        else:
            self.port = server.add_insecure_port(target)
        await server.start()
        self._server = server
        logger.info("%s gRPC API bound to: %s", self.name, self.address)

    async def stop(self, grace: float) -> None:
        """No new calls; calls in flight get up to ``grace`` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
