"""Startup configuration: ``config.properties`` + CLI + ``TS_*`` environment, merged once into a frozen ServerConfig.

This follows TorchServe's ``ConfigManager`` (spec section 1):

* the file is ``$TS_CONFIG_FILE``, else ``--ts-config``, else (unless ``--ncs``) the newest snapshot
  ``$LOG_LOCATION/config/*.cfg``, else ``./config.properties``, else none;
* ``$$NAME$$`` in a file value is replaced by the environment variable ``NAME`` (a missing one is fatal);
* precedence is file < CLI < environment, and the environment (``TS_JOB_QUEUE_SIZE``, ...) counts only when the
  merged properties say ``enable_envvars_config=true``;
* unknown keys are kept and warned about, never fatal; malformed values of the keys we read are fatal.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modelserver import devices
from modelserver.addresses import Address, parse_address
from modelserver.config_values import (
    get_bool,
    get_choice,
    get_choices,
    get_directory,
    get_int,
    parse_load_models,
    parse_models,
)
from modelserver.frontend_plan import frontend_count
from modelserver.properties import ConfigError, PropertiesSyntaxError, parse_properties, substitute_env
from modelserver.protocols import API_FAMILIES, MODEL_PROTOCOLS, TORCHSERVE

__all__ = [
    "ENV_OVERRIDES",
    "KNOWN_KEYS",
    "Address",
    "CliOptions",
    "ConfigError",
    "ServerConfig",
    "find_config_file",
    "latest_snapshot",
    "load_config",
    "parse_address",
    "rebuild_config",
]

logger = logging.getLogger("modelserver.config")


# --- keys ----------------------------------------------------------------------------------------------------------

# Keys TorchServe lets the environment override (its ConfigManager's TS_* constants), in its order.
_ENV_CONFIGURABLE_KEYS = (
    "debug",
    "inference_address",
    "management_address",
    "metrics_address",
    "load_models",
    "blacklist_env_vars",
    "default_workers_per_model",
    "default_response_timeout",
    "default_startup_timeout",
    "unregister_model_timeout",
    "number_of_netty_threads",
    "netty_client_threads",
    "job_queue_size",
    "number_of_gpu",
    "metrics_config",
    "metrics_mode",
    "model_metrics_auto_detect",
    "disable_system_metrics",
    "ipex_enable",
    "cpu_launcher_enable",
    "cpu_launcher_args",
    "ipex_gpu_enable",
    "async_logging",
    "cors_allowed_origin",
    "cors_allowed_methods",
    "cors_allowed_headers",
    "decode_input_request",
    "keystore",
    "keystore_pass",
    "keystore_type",
    "certificate_file",
    "private_key_file",
    "max_request_size",
    "max_response_size",
    "limit_max_image_pixels",
    "default_service_handler",
    "max_download_size",
    "service_envelope",
    "model_server_home",
    "model_store",
    "prefer_direct_buffer",
    "allowed_urls",
    "install_py_dep_per_model",
    "enable_metrics_api",
    "grpc_inference_address",
    "grpc_management_address",
    "grpc_inference_port",
    "grpc_management_port",
    "grpc_inference_max_connection_age_ms",
    "grpc_management_max_connection_age_ms",
    "grpc_inference_max_connection_age_grace_ms",
    "grpc_management_max_connection_age_grace_ms",
    "enable_grpc_ssl",
    "initial_worker_port",
    "initial_distribution_port",
    "workflow_store",
    "cpp_log_config",
    "token_expiration_min",
    "ts_header_key_sequence_id",
    "ts_header_key_sequence_start",
    "ts_header_key_sequence_end",
    "disable_token_authorization",
    "enable_model_api",
    # Our own keys.
    "default_protocol",
    "inference_protocols",
    "count_distribution_bucket",
    "mindspore_http_status",
    "mindspore_address",
    "oip_grpc_address",
    "grpc_transport",
    # The HTTP layer's timeouts and caps (modelserver.http_limits).
    "header_read_timeout",
    "body_read_timeout",
    "keep_alive_timeout",
    "write_timeout",
    "max_connections",
    "listen_backlog",
    "stream_buffer_size",
    "max_workers_per_model",
    "worker_shared_memory",
    # Frontend processes sharing the listening addresses (modelserver.frontend_plan).
    "frontend_processes",
)

# Keys read only from the file or CLI. ``ts_open_inference_protocol`` is here on purpose: the environment variable
# TS_OPEN_INFERENCE_PROTOCOL means "oip", not a boolean, and is always read directly from the environment.
_FILE_ONLY_KEYS = (
    "enable_envvars_config",
    "models",
    "model_snapshot",
    "use_native_io",
    "io_ratio",
    "metric_time_interval",
    "system_metrics_cmd",
    "use_env_allowed_urls",
    "ts_open_inference_protocol",
    "python",
    "plugins_path",
    "vmargs",
    "snapshot_store",
    # Written into config snapshots by TorchServe itself, or by older versions of it.
    "version",
    "tsConfigFile",
    "NUM_WORKERS",
    "metrics_format",
)

KNOWN_KEYS = frozenset(_ENV_CONFIGURABLE_KEYS + _FILE_ONLY_KEYS)

# TorchServe names the variable after its Java constant, which is TS_<KEY_UPPER> except for these.
_ENV_NAME_EXCEPTIONS = {"token_expiration_min": "TS_TOKEN_EXPIRATION_TIME_MIN"}


def _env_name(key: str) -> str:
    if key in _ENV_NAME_EXCEPTIONS:
        return _ENV_NAME_EXCEPTIONS[key]
    return key.upper() if key.startswith("ts_") else f"TS_{key.upper()}"


ENV_OVERRIDES: Mapping[str, str] = MappingProxyType({_env_name(key): key for key in _ENV_CONFIGURABLE_KEYS})
"""Environment variable name -> property key, honoured only with ``enable_envvars_config=true``."""

DEFAULT_LOG_LOCATION = "logs"
SNAPSHOT_SUFFIX = ".cfg"
_SNAPSHOT_TIMESTAMP = re.compile(r"(\d{14})(\d{3})-")  # yyyyMMddHHmmss + SSS, as SnapshotManager names them


_ADDRESS_DEFAULTS: Mapping[str, tuple[str, int, int]] = MappingProxyType(
    {
        "inference_address": ("http://127.0.0.1:8080", 80, 443),
        "management_address": ("http://127.0.0.1:8081", 8081, 8444),
        "metrics_address": ("http://127.0.0.1:8082", 8082, 8445),
    }
)


# --- the configuration objects -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliOptions:
    """The command-line options that take part in configuration."""

    ts_config: str | None = None
    model_store: str | None = None
    models: tuple[str, ...] = ()
    ncs: bool = False
    disable_token_auth: bool = False
    enable_model_api: bool = False
    workflow_store: str | None = None
    addresses: tuple[tuple[str, str], ...] = ()
    """Our ``--inference-address`` and friends: ``(key, value)`` pairs that override the file's addresses."""
    frontend_processes: int | None = None
    """Our ``--frontend-processes``."""


def _default_address(key: str) -> Address:
    default, http_port, https_port = _ADDRESS_DEFAULTS[key]
    return parse_address(key, default, http_port, https_port)


def _empty_mapping() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the server reads from its configuration, typed and resolved; immutable.

    ``load_config`` builds it. The defaults are TorchServe's, so ``ServerConfig()`` is a usable config for tests
    (with ``default_workers_per_model=1``, since resolving it needs the machine).
    """

    inference_address: Address = field(default_factory=lambda: _default_address("inference_address"))
    management_address: Address = field(default_factory=lambda: _default_address("management_address"))
    metrics_address: Address = field(default_factory=lambda: _default_address("metrics_address"))
    model_store: str | None = None
    """Absolute path of an existing directory, or None if nothing set it (the CLI insists on one)."""
    workflow_store: str | None = None
    """Absolute path; ``model_store`` when not set."""
    load_models: tuple[str, ...] = ()
    """``("all",)`` or the ``[name=]url`` entries of ``load_models``."""
    default_workers_per_model: int = 1
    """Resolved: 1 with ``debug``, else the configured value if > 0, else #GPUs if > 0, else #CPUs."""
    job_queue_size: int = 100
    default_response_timeout: int = 120
    default_startup_timeout: int = 120
    max_request_size: int = 6553500
    max_response_size: int = 6553500
    models: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=_empty_mapping)
    """The ``models=`` JSON: name -> version -> settings (``minWorkers``, ``batchSize``, ...)."""
    number_of_gpu: int = 0
    """The configured value capped at the GPUs detected; the detected count when not configured."""
    decode_input_request: bool = True
    disable_token_authorization: bool = False
    enable_model_api: bool = False
    enable_envvars_config: bool = False
    debug: bool = False
    config_snapshots: bool = True
    """False with ``--ncs``."""
    log_location: str = DEFAULT_LOG_LOCATION
    """``$LOG_LOCATION``, absolute; config snapshots live in its ``config/`` directory."""
    metrics_location: str = DEFAULT_LOG_LOCATION
    """``$METRICS_LOCATION``, absolute."""
    config_file: str | None = None
    """Absolute path of the file actually read, if any."""
    service_envelope: str = ""
    """TorchServe's ``service_envelope``: the request envelope every TorchServe handler is wrapped in."""
    default_protocol: str = TORCHSERVE
    """The protocol of a model that names none, and what shared routes mean for an unknown model."""
    inference_protocols: tuple[str, ...] = API_FAMILIES
    """The API families served on the inference address."""
    frontend_processes: int = 1
    """Frontend processes sharing the listening addresses: ``frontend_processes``, else TorchServe's
    ``number_of_netty_threads``, clamped to the CPUs (:mod:`modelserver.frontend_plan`)."""
    serve_management: bool = True
    """Bind TorchServe's management API; a KServe ``ModelServer`` (which has none) turns it off. Not a key."""
    properties: Mapping[str, str] = field(default_factory=_empty_mapping)
    """Every key after precedence (file < CLI < env), unknown ones included, as strings."""
    unknown_keys: tuple[str, ...] = ()

    def worker_environment(self) -> dict[str, str]:
        """TorchServe's ``getBackendConfiguration``: settings every worker process (every rank of a group) gets as
        environment variables, as written in the properties; TorchServe's handlers read ``TS_IPEX_ENABLE``."""
        properties = self.properties
        return {
            "TS_DECODE_INPUT_REQUEST": properties.get("decode_input_request", "true"),
            "TS_IPEX_ENABLE": properties.get("ipex_enable", "false"),
            "TS_IPEX_GPU_ENABLE": properties.get("ipex_gpu_enable", "false"),
        }


# --- loading -------------------------------------------------------------------------------------------------------


def load_config(cli: CliOptions, environ: Mapping[str, str], cwd: str | None = None) -> ServerConfig:
    """Find, read and merge the configuration as TorchServe does; raise ConfigError on anything malformed.

    ``cwd`` is where relative paths (config file, ``LOG_LOCATION``, stores) are resolved; default: the process's.
    """
    cwd = os.path.abspath(cwd if cwd is not None else os.getcwd())
    config_file = find_config_file(cli, environ, cwd)
    properties = _read_config_file(config_file, environ) if config_file else {}
    properties.update(_cli_properties(cli))
    if get_bool(properties, "enable_envvars_config", False):
        properties.update(_env_properties(properties, environ))
    unknown = tuple(sorted(key for key in properties if key not in KNOWN_KEYS))
    if unknown:
        logger.warning("Unknown configuration keys (kept, but not used): %s", ", ".join(unknown))
    return _build(properties, environ, cwd, cli=cli, config_file=config_file, unknown=unknown)


def rebuild_config(
    properties: Mapping[str, str], environ: Mapping[str, str], cwd: str, *, ncs: bool, config_file: str | None
) -> ServerConfig:
    """The configuration again from its merged ``properties``: what a frontend process builds from what the
    supervisor sends it, so every frontend runs the very configuration the command line resolved (a snapshot written
    meanwhile is not read again)."""
    unknown = tuple(sorted(key for key in properties if key not in KNOWN_KEYS))
    return _build(dict(properties), environ, cwd, cli=CliOptions(ncs=ncs), config_file=config_file, unknown=unknown)


def find_config_file(cli: CliOptions, environ: Mapping[str, str], cwd: str) -> str | None:
    """The absolute path of the config file to read, or None; a file named explicitly must exist."""
    for source, named in (("TS_CONFIG_FILE", environ.get("TS_CONFIG_FILE")), ("--ts-config", cli.ts_config)):
        if named:
            path = os.path.join(cwd, named)
            if not os.path.isfile(path):
                raise ConfigError(f"{source}: config file {named!r} does not exist or is not a file")
            return os.path.abspath(path)
    if not cli.ncs:
        snapshot = latest_snapshot(os.path.join(_location(environ, "LOG_LOCATION", cwd), "config"))
        if snapshot is not None:
            return snapshot
    default = os.path.join(cwd, "config.properties")
    return default if os.path.isfile(default) else None


def latest_snapshot(directory: str) -> str | None:
    """The newest ``*.cfg`` file in ``directory`` (absolute path), or None if there is none.

    "Newest" is by the ``yyyyMMddHHmmssSSS-`` timestamp that starts a snapshot's name, as TorchServe orders them;
    a ``.cfg`` file named otherwise counts with its modification time.
    """
    try:
        with os.scandir(directory) as entries:
            candidates = [
                (_snapshot_time(entry), entry.name, os.path.abspath(entry.path))
                for entry in entries
                if entry.name.endswith(SNAPSHOT_SUFFIX) and entry.is_file()
            ]
    except OSError:
        return None
    return max(candidates)[2] if candidates else None


def _snapshot_time(entry: os.DirEntry[str]) -> float:
    match = _SNAPSHOT_TIMESTAMP.match(entry.name)
    if match is not None:
        try:
            return time.mktime(time.strptime(match[1], "%Y%m%d%H%M%S")) + int(match[2]) / 1000
        except (ValueError, OverflowError):
            pass
    return entry.stat().st_mtime


def _location(environ: Mapping[str, str], name: str, cwd: str) -> str:
    return os.path.abspath(os.path.join(cwd, environ.get(name) or DEFAULT_LOG_LOCATION))


def _read_config_file(path: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Parse the file and resolve ``$$NAME$$`` references in its values."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"config file {path!r} cannot be read: {err.strerror}") from err
    try:
        properties = parse_properties(_decode(data))
    except PropertiesSyntaxError as err:
        raise ConfigError(f"config file {path!r}: {err}") from err
    return {key: substitute_env(value, environ, key=key) for key, value in properties.items()}


def _decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), falling back to ISO-8859-1, which is what Java's ``Properties.load`` assumes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("iso-8859-1")


def _cli_properties(cli: CliOptions) -> dict[str, str]:
    properties: dict[str, str] = {}
    if cli.model_store is not None:
        properties["model_store"] = cli.model_store
    if cli.workflow_store is not None:
        properties["workflow_store"] = cli.workflow_store
    if cli.models:
        properties["load_models"] = ",".join(cli.models)
    if cli.disable_token_auth:
        properties["disable_token_authorization"] = "true"
    if cli.enable_model_api:
        properties["enable_model_api"] = "true"
    if cli.frontend_processes is not None:
        properties["frontend_processes"] = str(cli.frontend_processes)
    properties.update(cli.addresses)
    return properties


def _env_properties(properties: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The ``TS_*`` overrides present in ``environ``; ``TS_ALLOWED_URLS`` also needs ``use_env_allowed_urls``."""
    allow_urls = get_bool(properties, "use_env_allowed_urls", False)
    return {
        key: environ[name]
        for name, key in ENV_OVERRIDES.items()
        if name in environ and (key != "allowed_urls" or allow_urls)
    }


def _build(
    properties: dict[str, str],
    environ: Mapping[str, str],
    cwd: str,
    *,
    cli: CliOptions,
    config_file: str | None,
    unknown: tuple[str, ...],
) -> ServerConfig:
    model_store = get_directory(properties, "model_store", cwd)
    workflow_store = properties.get("workflow_store")
    number_of_gpu = _number_of_gpu(properties, environ)
    debug = get_bool(properties, "debug", False)
    return ServerConfig(
        inference_address=_get_address(properties, "inference_address"),
        management_address=_get_address(properties, "management_address"),
        metrics_address=_get_address(properties, "metrics_address"),
        model_store=model_store,
        workflow_store=os.path.abspath(os.path.join(cwd, workflow_store)) if workflow_store else model_store,
        load_models=parse_load_models(properties.get("load_models")),
        default_workers_per_model=1 if debug else _default_workers(properties, number_of_gpu),
        job_queue_size=get_int(properties, "job_queue_size", 100, minimum=1),
        default_response_timeout=get_int(properties, "default_response_timeout", 120),
        default_startup_timeout=get_int(properties, "default_startup_timeout", 120),
        max_request_size=get_int(properties, "max_request_size", 6553500),
        max_response_size=get_int(properties, "max_response_size", 6553500),
        models=parse_models(properties.get("models")),
        number_of_gpu=number_of_gpu,
        decode_input_request=get_bool(properties, "decode_input_request", True),
        disable_token_authorization=get_bool(properties, "disable_token_authorization", False),
        enable_model_api=get_bool(properties, "enable_model_api", False),
        enable_envvars_config=get_bool(properties, "enable_envvars_config", False),
        debug=debug,
        config_snapshots=not cli.ncs,
        log_location=_location(environ, "LOG_LOCATION", cwd),
        metrics_location=_location(environ, "METRICS_LOCATION", cwd),
        config_file=config_file,
        service_envelope=(properties.get("service_envelope") or "").strip(),
        default_protocol=get_choice(properties, "default_protocol", TORCHSERVE, MODEL_PROTOCOLS),
        inference_protocols=get_choices(properties, "inference_protocols", API_FAMILIES),
        frontend_processes=frontend_count(properties).count,
        properties=MappingProxyType(dict(properties)),
        unknown_keys=unknown,
    )


def _number_of_gpu(properties: Mapping[str, str], environ: Mapping[str, str]) -> int:
    detected = devices.visible_gpu_count(environ)
    return min(detected, get_int(properties, "number_of_gpu", detected))


def _default_workers(properties: Mapping[str, str], number_of_gpu: int) -> int:
    configured = get_int(properties, "default_workers_per_model", 0)
    return configured or number_of_gpu or devices.cpu_count()


def _get_address(properties: Mapping[str, str], key: str) -> Address:
    default, http_port, https_port = _ADDRESS_DEFAULTS[key]
    return parse_address(key, properties.get(key, default), http_port, https_port)
