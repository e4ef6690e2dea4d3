"""The Open Inference Protocol over gRPC (``oip_grpc_address``) against the real CLI, with Triton's gRPC client
(raw tensors, FP16, BYTES, errors, the repository) and KServe's ``InferenceGRPCClient`` (typed and raw contents,
KServe's repository messages); a client deadline that passes while the model runs cancels the request; token
authorization as on REST.

The clients run in processes of their own (:mod:`tests.grpc_clients`): Triton's and KServe's generated modules
cannot be imported into one process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.server import ROOT, TEST_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e
pytest.importorskip("grpc")


TRANSPORTS = ("native", "grpcio")
"""``grpc_transport``: each test runs on this server's own HTTP/2 and on grpc.aio."""


@pytest.fixture(scope="module", params=TRANSPORTS)
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> RunningServer:
    tmp = tmp_path_factory.mktemp("grpc_oip")
    models = {name: TEST_MODELS / name for name in ("kdummy", "kfp16", "ksleepy")}
    properties = {
        "load_models": "kdummy=kdummy,kfp16=kfp16,ksleepy=ksleepy",
        "enable_model_api": "true",
        "oip_grpc_address": f"127.0.0.1:{free_port()}",
        "grpc_transport": request.param,
    }
    running = start_server(tmp, models, properties=properties)
    running.extra["grpc"] = properties["oip_grpc_address"]
    shutil.copytree(TEST_MODELS / "kdummy", tmp / "model_store" / "spare")  # in the store, not loaded at start
    yield running
    assert running.stop() == 0


def run_client(kind: str, address: str, *extra: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.grpc_clients", kind, address, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


def test_tritons_grpc_client(server: RunningServer) -> None:
    run_client("triton", server.extra["grpc"])


def test_large_requests_in_flight_together_on_one_channel(server: RunningServer) -> None:
    run_client("triton-concurrent", server.extra["grpc"])


def test_kserves_grpc_client(server: RunningServer) -> None:
    run_client("kserve", server.extra["grpc"])


CANCELLED_LINE = "to model ksleepy cancelled: the client went away"


@pytest.mark.parametrize("kind", ["cancel", "client-cancel"], ids=["deadline", "client-cancel"])
def test_a_deadline_or_a_clients_cancel_cancels_the_request(server: RunningServer, kind: str) -> None:
    before = server.logs().count(CANCELLED_LINE)
    run_client(kind, server.extra["grpc"])
    deadline = time.monotonic() + 5
    while server.logs().count(CANCELLED_LINE) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.logs().count(CANCELLED_LINE) == before + 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_token_authorization_needs_the_inference_key(tmp_path, transport: str) -> None:
    address, management = f"127.0.0.1:{free_port()}", free_port()
    properties = {"oip_grpc_address": address, "grpc_management_port": str(management), "grpc_transport": transport}
    running = start_server(tmp_path, {"kdummy": TEST_MODELS / "kdummy"}, properties, auth=True)
    try:
        keys = running.keys()
        run_client("auth", address, keys["inference"]["key"], f"127.0.0.1:{management}", keys["management"]["key"])
    finally:
        assert running.stop() == 0


def test_off_unless_configured(tmp_path) -> None:
    running = start_server(tmp_path, {"kdummy": TEST_MODELS / "kdummy"})
    try:
        assert "gRPC" not in running.logs()
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_address_serves_tls_with_the_configured_certificate(tmp_path, transport: str) -> None:
    import grpc

    from tests.e2e.test_tls import write_key_pair
    from workers import grpc_stubs

    cert, key = write_key_pair(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    properties = {
        "oip_grpc_address": f"https://{address}",
        "certificate_file": str(cert),
        "private_key_file": str(key),
        "grpc_transport": transport,
    }
    running = start_server(tmp_path, {"kdummy": TEST_MODELS / "kdummy"}, properties)
    pb = grpc_stubs.load("oip_inference")
    method = "/inference.GRPCInferenceService/ServerLive"
    try:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(address, credentials) as channel:
            live = channel.unary_unary(method, pb.ServerLiveRequest.SerializeToString, pb.ServerLiveResponse.FromString)
            assert live(pb.ServerLiveRequest(), timeout=10).live
        with grpc.insecure_channel(address) as channel:  # plain HTTP/2 to a TLS port: refused
            live = channel.unary_unary(method, pb.ServerLiveRequest.SerializeToString, pb.ServerLiveResponse.FromString)
            with pytest.raises(grpc.RpcError):
                live(pb.ServerLiveRequest(), timeout=3)
    finally:
        assert running.stop() == 0
