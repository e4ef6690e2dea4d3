"""KServe's ``ModelServer`` constructor and ``start`` checks, without serving: the HTTPS port switch and the
arguments ``start`` refuses, as KServe 0.21 has them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelserver.kserve import Model
from modelserver.kserve.model_server import ModelServer


def test_ssl_files_given_to_the_constructor_serve_https_on_kserves_https_port() -> None:
    server = ModelServer(ssl_certfile="/tls/tls.crt", ssl_keyfile="/tls/tls.key")
    assert (server.ssl_certfile, server.ssl_keyfile, server.http_port) == ("/tls/tls.crt", "/tls/tls.key", 8443)
    assert server.config().inference_address.scheme == "https"


def test_an_explicit_port_or_half_an_ssl_setup_keeps_the_port() -> None:
    assert ModelServer(http_port=9000, ssl_certfile="/tls/tls.crt", ssl_keyfile="/tls/tls.key").http_port == 9000
    assert ModelServer(ssl_certfile="/tls/tls.crt").http_port == 8080
    plain = ModelServer()
    assert (plain.http_port, plain.config().inference_address.scheme) == (8080, "http")


def test_start_refuses_what_is_not_a_list_of_models() -> None:
    with pytest.raises(RuntimeError, match="^Unknown model collection type$"):
        ModelServer().start(None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="^Model type should be 'BaseKServeModel'$"):
        ModelServer().start([Model("m"), object()])


def test_args_of_the_script_side_model_server_module_are_kserves_parsed_flags() -> None:
    """``model_server.args`` with ``kserve`` changed to ``modelserver.kserve`` (a script's ``args.http_port``)."""
    script = (
        "import sys\n"
        "sys.argv = ['serve.py', '--http_port', '8123', '--model_name', 'm']\n"
        "from modelserver.kserve import model_server\n"
        "assert model_server.args.http_port == 8123, model_server.args\n"
        "assert model_server.args.model_name == 'm'\n"
        "print('args ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "args ok"
