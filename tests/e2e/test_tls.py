"""HTTPS listeners, CORS headers and the log files, through the real CLI."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from modelserver.tls import self_signed_certificate
from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e

CORS = {
    "cors_allowed_origin": "https://app.example.com",
    "cors_allowed_methods": "GET, POST, PUT, OPTIONS",
    "cors_allowed_headers": "X-Custom-Header, Authorization",
}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "https://app.example.com",
    "Access-Control-Allow-Methods": "GET, POST, PUT, OPTIONS",
    "Access-Control-Allow-Headers": "X-Custom-Header, Authorization",
}


def write_key_pair(directory: Path) -> tuple[Path, Path]:
    cert_pem, key_pem, _ = self_signed_certificate(["127.0.0.1", "localhost"])
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = write_key_pair(tmp)
    running = start_server(
        tmp,
        {"echo": EXAMPLE_MODELS / "echo", "kit": TEST_MODELS / "kit"},
        properties={
            "inference_address": f"https://127.0.0.1:{free_port()}",
            "private_key_file": str(key),
            "certificate_file": str(cert),
            **CORS,
        },
    )
    running.extra["cert"] = str(cert)
    yield running
    assert running.stop() == 0


def test_https_prediction_verified_against_the_configured_certificate(tls_server: RunningServer) -> None:
    assert tls_server.inference.startswith("https://")
    response = requests.post(
        tls_server.inference + "/predictions/echo", data=b"secret", verify=tls_server.extra["cert"], timeout=10
    )
    assert (response.status_code, response.content) == (200, b"secret")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_https_speaks_tls_1_2_or_later_and_refuses_plain_http(tls_server: RunningServer) -> None:
    port = int(tls_server.inference.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=tls_server.extra["cert"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
    old = ssl.create_default_context(cafile=tls_server.extra["cert"])
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)), socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        old.wrap_socket(raw, server_hostname="127.0.0.1").close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/ping", timeout=10)


def test_cors_headers_on_every_response(tls_server: RunningServer) -> None:
    verify = tls_server.extra["cert"]
    responses = [
        requests.get(tls_server.inference + "/ping", verify=verify, timeout=10),
        requests.post(tls_server.inference + "/predictions/echo", data=b"x", verify=verify, timeout=10),
        requests.get(tls_server.inference + "/predictions/missing", verify=verify, timeout=10),  # 404
        requests.options(tls_server.inference + "/", verify=verify, timeout=10),
        requests.get(tls_server.management + "/models", timeout=10),
        requests.get(tls_server.metrics + "/metrics", timeout=10),
    ]
    for response in responses:
        for name, value in CORS_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, response.status_code, name)


def test_cors_headers_on_streamed_responses_and_a_handlers_own_header_wins(tls_server: RunningServer) -> None:
    url = tls_server.inference + "/predictions/kit"
    streamed = requests.post(url, json={"op": "stream"}, verify=tls_server.extra["cert"], timeout=10)
    assert streamed.status_code == 200 and streamed.headers.get("Transfer-Encoding") == "chunked"
    for name, value in CORS_HEADERS.items():
        assert streamed.headers.get(name) == value
    own = {"op": "echo", "headers": {"Access-Control-Allow-Origin": "https://mine.example.com"}}
    response = requests.post(url, json=own, verify=tls_server.extra["cert"], timeout=10)
    assert response.headers["Access-Control-Allow-Origin"] == "https://mine.example.com"


def test_access_log_has_one_line_per_request(tls_server: RunningServer) -> None:
    requests.get(tls_server.management + "/models?limit=1", timeout=10)
    path = tls_server.workdir / "logs" / "access_log.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and '"GET /models?limit=1 HTTP/1.1" 200 ' not in path.read_text():
        time.sleep(0.1)
    lines = path.read_text().splitlines()
    [line] = [line for line in lines if "/models?limit=1" in line]
    stamp, _, rest = line.partition(" - ")
    assert time.strptime(stamp.split(",")[0], "%Y-%m-%dT%H:%M:%S")
    client, request_line, status_and_ms = rest.split('"')
    assert client.startswith("/127.0.0.1:") and request_line == "GET /models?limit=1 HTTP/1.1"
    status, ms = status_and_ms.split()
    assert status == "200" and int(ms) >= 0
    assert any('"POST /predictions/echo HTTP/1.1" 200 ' in line for line in lines)
    assert "/models?limit=1" not in tls_server.logs()  # not on stdout


def test_server_and_model_logs(tls_server: RunningServer) -> None:
    url = tls_server.inference + "/predictions/kit"
    assert requests.post(url, json={"op": "raise"}, verify=tls_server.extra["cert"], timeout=10).status_code == 503
    logs = tls_server.workdir / "logs"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "ValueError: boom" not in (logs / "model_log.log").read_text():
        time.sleep(0.1)
    model_log = (logs / "model_log.log").read_text()
    assert "ValueError: boom" in model_log and "MODEL_LOG - " in model_log
    server_log = (logs / "ts_log.log").read_text()
    assert "Inference API bound to: https://127.0.0.1:" in server_log
    assert "ValueError: boom" in server_log  # MODEL_LOG lines also reach the server log and stdout, as in TorchServe
    assert "ValueError: boom" in tls_server.logs()


def test_log_location_from_the_environment(tmp_path: Path) -> None:
    running = start_server(tmp_path, {}, env={"LOG_LOCATION": str(tmp_path / "elsewhere")})
    try:
        requests.get(running.inference + "/ping", timeout=10)
    finally:
        running.stop()
    assert (tmp_path / "elsewhere" / "access_log.log").read_text().count('"GET /ping HTTP/1.1" 200') == 1
    assert (tmp_path / "elsewhere" / "ts_log.log").exists() and (tmp_path / "elsewhere" / "model_log.log").exists()
    assert not (tmp_path / "logs" / "access_log.log").exists()  # logs/ may hold the metrics files (METRICS_LOCATION)


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_https_without_key_files_serves_a_self_signed_certificate(tmp_path: Path) -> None:
    port = free_port()
    running = start_server(tmp_path, {}, properties={"inference_address": f"https://127.0.0.1:{port}"})
    try:
        assert requests.get(running.inference + "/ping", verify=False, timeout=10).status_code == 200
        pem = ssl.get_server_certificate(("127.0.0.1", port))
        der = ssl.PEM_cert_to_DER_cert(pem)
        fingerprint = hashlib.sha256(der).hexdigest()
        assert ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)) in running.logs()
    finally:
        running.stop()


def run_cli(
    tmp_path: Path, properties: dict[str, str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    command = [sys.executable, "-m", "modelserver", "--start", "--foreground", "--ncs", "--ts-config", str(config)]
    env = {**os.environ, "TMPDIR": str(tmp_path), **(env or {})}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"keystore": "store.p12"}, "keystore"),
        ({"private_key_file": "key.pem"}, "certificate_file"),
        ({"private_key_file": "nope.pem", "certificate_file": "nope.crt"}, "private_key_file"),
    ],
)
def test_tls_misconfiguration_is_a_clear_startup_error(tmp_path: Path, properties: dict[str, str], named: str) -> None:
    address = {"inference_address": f"https://127.0.0.1:{free_port()}"}
    result = run_cli(tmp_path, {**address, **properties})
    assert result.returncode != 0
    assert named in result.stderr and "Traceback" not in result.stderr


def test_https_without_key_files_or_cryptography_is_a_clear_startup_error(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "cryptography"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))}
    result = run_cli(tmp_path, {"inference_address": f"https://127.0.0.1:{free_port()}"}, env)
    assert result.returncode != 0
    assert "private_key_file" in result.stderr and "cryptography" in result.stderr


def write_rsa_key_pair(directory: Path, bits: int) -> tuple[Path, Path]:
    """A self-signed ``CN=127.0.0.1`` certificate on an RSA key of ``bits`` (TorchServe's test pair is 1024-bit)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = directory / f"cert{bits}.pem", directory / f"key{bits}.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return cert, key_file


def test_https_with_a_1024_bit_rsa_key_starts_and_warns(tmp_path: Path) -> None:
    import urllib.request

    cert, key = write_rsa_key_pair(tmp_path, 1024)
    running = start_server(
        tmp_path,
        {"echo": EXAMPLE_MODELS / "echo"},
        properties={
            "inference_address": f"https://127.0.0.1:{free_port()}",
            "private_key_file": str(key),
            "certificate_file": str(cert),
        },
    )
    try:
        client = ssl.create_default_context(cafile=str(cert))
        client.set_ciphers("DEFAULT:@SECLEVEL=1")  # a client must accept the weak key too
        running.wait_ready(["echo"])
        request = urllib.request.Request(
            running.inference + "/predictions/echo",
            data=b"weak but served",
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(request, context=client, timeout=10) as response:
            assert (response.status, response.read()) == (200, b"weak but served")
        assert "1024-bit RSA" in running.logs() and "openssl req" in running.logs()
    finally:
        running.stop()
