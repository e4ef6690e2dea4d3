"""KServe's command line (``kserve.model_server.parser`` in KServe 0.21): every flag and default of its
``ModelServer``, built when this module is imported, as KServe builds it, but never parsed at import (KServe parses
``sys.argv`` there; :func:`parse_known_args` does it on request).

The parser has ``add_help=False`` so that a model's script can extend it: ``argparse.ArgumentParser(parents=[
parser])``. Boolean flags take KServe's ``strtobool`` words (y/yes/t/true/on/1, n/no/f/false/off/0).
``--ssl_certfile``/``--ssl_keyfile`` default to ``KSERVE_TLS_CERT_FILE``/``KSERVE_TLS_KEY_FILE`` as read at import.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from .constants import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    KSERVE_TLS_CERT_FILE_ENV,
    KSERVE_TLS_KEY_FILE_ENV,
    MAX_GRPC_MESSAGE_LENGTH,
)
from .utils import strtobool

__all__ = ["parse_known_args", "parser"]


def _boolean(value: str) -> bool:
    return strtobool(value)


_boolean.__name__ = "strtobool"  # argparse names the type in its error: "invalid strtobool value: 'x'"

_PROTOCOLS = ["v1", "v2", "grpc-v2"]

parser = argparse.ArgumentParser(add_help=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
# The model server's arguments (kserve.ModelServer).
parser.add_argument(
    "--http_port", default=DEFAULT_HTTP_PORT, type=int, help="The HTTP Port listened to by the model server."
)
parser.add_argument(
    "--grpc_port", default=DEFAULT_GRPC_PORT, type=int, help="The GRPC Port listened to by the model server."
)
parser.add_argument("--workers", default=1, type=int, help="The number of uvicorn workers for multi-processing.")
parser.add_argument("--max_threads", default=4, type=int, help="The max number of gRPC processing threads.")
parser.add_argument("--max_asyncio_workers", default=None, type=int, help="The max number of asyncio workers to spawn.")
parser.add_argument("--enable_grpc", default=True, type=_boolean, help="Enable gRPC for the model server.")
parser.add_argument(
    "--enable_docs_url", default=False, type=_boolean, help="Enable docs url '/docs' to display Swagger UI."
)
parser.add_argument(
    "--enable_latency_logging",
    default=True,
    type=_boolean,
    help="Enable a log line per request with preprocess/predict/postprocess latency metrics.",
)
parser.add_argument(
    "--configure_logging", default=True, type=_boolean, help="Enable to configure KServe and Uvicorn logging."
)
parser.add_argument(
    "--log_config_file",
    default=None,
    type=str,
    help="File path containing UvicornServer's log config. Needs to be a yaml or json file.",
)
parser.add_argument(
    "--access_log_format",
    default=None,
    type=str,
    help="The asgi access logging format. It allows to override only the `uvicorn.access`'s format configuration "
    "with a richer set of fields",
)
parser.add_argument(
    "--event-loop",
    dest="event_loop",
    default="auto",
    type=str,
    choices=["auto", "asyncio", "uvloop"],
    help="Event loop implementation used by the HTTP server: 'auto' (uvloop if available), 'asyncio' or 'uvloop'.",
)
parser.add_argument(
    "--timeout-keep-alive",
    dest="timeout_keep_alive",
    default=65,
    type=int,
    help="Timeout for keep-alive connections in seconds; longer than the proxy's idle timeout.",
)
# The model's arguments (kserve.Model), read by the model's script.
parser.add_argument("--model_name", default="model", type=str, help="The name of the model used on the endpoint path.")
parser.add_argument(
    "--predictor_host",
    default=None,
    type=str,
    help="The host name used for calling to the predictor from transformer.",
)
parser.add_argument(
    "--protocol",
    default="v1",
    type=str,
    choices=_PROTOCOLS,
    help="The inference protocol used for calling to the predictor from transformer. "
    "Deprecated and replaced by --predictor_protocol",
)
parser.add_argument(
    "--predictor_protocol",
    default="v1",
    type=str,
    choices=_PROTOCOLS,
    help="The inference protocol used for calling to the predictor from transformer.",
)
parser.add_argument(
    "--predictor_use_ssl",
    default=False,
    type=_boolean,
    help="Use ssl for the http connection to the predictor.",
)
parser.add_argument(
    "--predictor_request_timeout_seconds",
    default=600,
    type=int,
    help="The timeout seconds for the request sent to the predictor.",
)
parser.add_argument(
    "--grpc_max_send_message_length",
    default=MAX_GRPC_MESSAGE_LENGTH,
    type=int,
    help="The max message length for gRPC send message.",
)
parser.add_argument(
    "--grpc_max_receive_message_length",
    default=MAX_GRPC_MESSAGE_LENGTH,
    type=int,
    help="The max message length for gRPC receive message.",
)
parser.add_argument(
    "--predictor_request_retries",
    default=0,
    type=int,
    help="The number of retries if predictor request fails. Defaults to 0.",
)
parser.add_argument(
    "--enable_predictor_health_check",
    action="store_true",
    help="The Transformer will perform readiness check for the predictor in addition to "
    "its health check. By default it is disabled.",
)
parser.add_argument(
    "--ssl_certfile",
    default=os.environ.get(KSERVE_TLS_CERT_FILE_ENV),
    type=str,
    help=f"The path to the SSL certificate file for serving HTTPS. Falls back to {KSERVE_TLS_CERT_FILE_ENV}.",
)
parser.add_argument(
    "--ssl_keyfile",
    default=os.environ.get(KSERVE_TLS_KEY_FILE_ENV),
    type=str,
    help=f"The path to the SSL private key file for serving HTTPS. Falls back to {KSERVE_TLS_KEY_FILE_ENV}.",
)


def parse_known_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The server's arguments in ``argv`` (default ``sys.argv[1:]``), ignoring the ones it does not know, as KServe
    does at import of ``kserve.model_server`` (its ``args``)."""
    args, _ = parser.parse_known_args(argv)
    return args
