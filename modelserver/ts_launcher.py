"""``ts.launcher`` for our server: TorchServe 0.12's test helpers (``start``, ``stop``, ``register_model``...), with
their signatures, driving our CLI and management API instead of ``torchserve``.

Pytest files written for TorchServe (``import ts.launcher``) run unchanged against this server when the ``ts``
shim is importable (``python -m modelserver.ts_path``). Where TorchServe's helpers hard-code
``http://localhost:8081``, these use the management address of the configuration ``start`` was given (else of
the one the CLI would find: ``config.properties`` in the working directory, ``TS_CONFIG_FILE``), so a test can run
the server on free ports.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from queue import Full, Queue
from typing import IO, Any

import requests

from .config import CliOptions, ConfigError, load_config

STARTED = "Model server started"
DEFAULT_MANAGEMENT = "http://127.0.0.1:8081"
QUEUE_SIZE = 1000
"""Output lines kept for the caller of :func:`start`; later lines are dropped while the queue is full."""

_management_url: str | None = None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelserver", *args]


def stop(wait: bool = True) -> None:
    """``modelserver --stop``: stop the server this environment's pid file names (``$TMPDIR/.model_server.pid``)."""
    subprocess.run(_cli("--stop", *(["--foreground"] if wait else [])), check=False)


def start(
    model_store: str | None = None,
    snapshot_file: str | None = None,
    no_config_snapshots: bool = False,
    plugin_folder: str | None = None,
    disable_token: bool = False,
    models: str | Iterable[str] | None = None,
    enable_model_api: bool = False,
) -> Queue[str | None]:
    """Stop any running server, start ours (``modelserver --start``) and return once it prints
    ``Model server started.``; its output is printed, and the returned queue gets each later line (``None`` at the
    end), as TorchServe's helper does. ``snapshot_file`` is the configuration file (``--ts-config``)."""
    global _management_url
    stop()
    args = ["--start"]
    if model_store:
        args += ["--model-store", str(model_store)]
    if plugin_folder:
        args += ["--plugins-path", str(plugin_folder)]
    if snapshot_file:
        args += ["--ts-config", str(snapshot_file)]
    if no_config_snapshots:
        args.append("--no-config-snapshots")
    if disable_token:
        args.append("--disable-token-auth")
    model_list = [models] if isinstance(models, str) else list(models or [])
    if model_list:
        args += ["--models", *model_list]
    if enable_model_api:
        args.append("--enable-model-api")
    cli = CliOptions(
        ts_config=snapshot_file,
        model_store=model_store,
        models=tuple(model_list),
        ncs=no_config_snapshots,
        disable_token_auth=disable_token,
        enable_model_api=enable_model_api,
    )
    _management_url = _configured_management_url(cli)
    process = subprocess.Popen(_cli(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        print(line)
        if STARTED in line:
            break
    lines: Queue[str | None] = Queue(maxsize=QUEUE_SIZE)
    threading.Thread(target=_follow, args=(process, process.stdout, lines), daemon=True).start()
    return lines


def _follow(process: subprocess.Popen[bytes], stream: IO[bytes], lines: Queue[str | None]) -> None:
    """Print the server's output and queue it until the server closes it (it stops)."""
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        print(line)
        with contextlib.suppress(Full):  # a full queue drops the line, as TorchServe's helper does
            lines.put_nowait(line)
    process.wait()
    while True:
        try:
            lines.put_nowait(None)
            return
        except Full:
            lines.get_nowait()


def register_model_with_params(params: Any) -> requests.Response:
    """``POST /models`` on the management API with ``params`` (pairs or a dict)."""
    return requests.post(f"{management_url()}/models", params=params, timeout=600)


def register_model(model_name: str, url: str) -> requests.Response:
    """Register ``url`` (a model store entry, archive path or URL) as ``model_name`` with one worker, synchronously."""
    params = (("model_name", model_name), ("url", url), ("initial_workers", "1"), ("synchronous", "true"))
    return register_model_with_params(params)


def management_url() -> str:
    """The management API of the server :func:`start` started, else of the configuration the CLI would read."""
    return _management_url or _configured_management_url(CliOptions())


def _configured_management_url(cli: CliOptions) -> str:
    try:
        address = load_config(cli, os.environ).management_address
    except (ConfigError, OSError):
        return DEFAULT_MANAGEMENT
    return DEFAULT_MANAGEMENT if address.is_unix else str(address)
