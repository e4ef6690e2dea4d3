"""The gRPC listeners' settings and a clear error when an address cannot be bound (modelserver.grpc_server)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from modelserver.config import Address, ConfigError
from modelserver.grpc_server import GrpcListener, oip_address, torchserve_address, transport
from modelserver.h2.listener import NativeGrpcListener

pytest.importorskip("grpc")


def test_oip_address_is_off_unless_set_and_a_bare_host_port_is_http() -> None:
    assert oip_address({}) is None and oip_address({"oip_grpc_address": " "}) is None
    assert oip_address({"oip_grpc_address": "0.0.0.0:8081"}) == Address("http", "0.0.0.0", 8081)
    assert oip_address({"oip_grpc_address": "https://[::1]:9"}) == Address("https", "::1", 9)
    with pytest.raises(ConfigError, match="TCP only"):
        oip_address({"oip_grpc_address": "unix:/tmp/x.sock"})


def test_torchserve_addresses_follow_torchserves_keys() -> None:
    assert torchserve_address({}, "inference") is None
    assert torchserve_address({"grpc_inference_port": "7070"}, "inference") == Address("http", "127.0.0.1", 7070)
    props = {"grpc_management_port": "7071", "grpc_management_address": "0.0.0.0", "enable_grpc_ssl": "TRUE"}
    assert torchserve_address(props, "management") == Address("https", "0.0.0.0", 7071)
    with pytest.raises(ConfigError, match="grpc_inference_port"):
        torchserve_address({"grpc_inference_port": "70x"}, "inference")


def test_the_transport_is_native_unless_grpcio_is_asked_for() -> None:
    assert transport({}) == "native" and transport({"grpc_transport": " GRPCIO "}) == "grpcio"
    with pytest.raises(ConfigError, match="grpc_transport: expected one of native, grpcio"):
        transport({"grpc_transport": "netty"})


@pytest.mark.parametrize("kind", [GrpcListener, NativeGrpcListener])
def test_an_address_in_use_is_an_os_error_naming_the_api(kind: type) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = Address("http", "127.0.0.1", taken.getsockname()[1])
        listener = kind("OIP", address, [], max_receive=1024, max_send=1024)
        with pytest.raises(OSError, match="OIP gRPC API cannot listen on http://127.0.0.1"):
            asyncio.run(listener.start())
