"""``modelserver``: TorchServe's command line (``--start``, ``--stop``, ``--foreground``, ...).

``--start`` without ``--foreground`` starts the server as a detached child and returns at once,
like ``torchserve --start``; the child prints ``Model server started.`` on the same terminal
when every listener is bound. The pid file is ``$TMPDIR/.model_server.pid``, as TorchServe's.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import __version__, logs, tls
from .config import CliOptions, ConfigError, ServerConfig, load_config

ALREADY_RUNNING = "TorchServe is already running, please use torchserve --stop to stop TorchServe."
NOT_RUNNING = "TorchServe is not currently running."
STOPPED = "TorchServe has stopped."
ADDRESS_KEYS = ("inference_address", "management_address", "metrics_address")


def pid_file() -> Path:
    return Path(tempfile.gettempdir()) / ".model_server.pid"


def running_pid() -> int | None:
    """The pid in the pid file if that process is alive, else None (a stale file is removed)."""
    path = pid_file()
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    return pid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelserver", description="A fast model server speaking TorchServe's APIs.")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--start", action="store_true", help="start the model server (the default)")
    action.add_argument("--stop", action="store_true", help="stop the running model server")
    action.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    parser.add_argument("--foreground", action="store_true", help="run in the foreground instead of detaching")
    parser.add_argument("--model-store", dest="model_store", help="the model store directory")
    parser.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="models to load at start: all, name=path, or path (relative to the model store)",
    )
    parser.add_argument("--ts-config", dest="ts_config", help="configuration file (config.properties)")
    parser.add_argument(
        "--ncs", "--no-config-snapshots", dest="ncs", action="store_true", help="do not read or write config snapshots"
    )
    parser.add_argument(
        "--dt",
        "--disable-token-auth",
        dest="disable_token_auth",
        action="store_true",
        help="disable token authorization",
    )
    parser.add_argument(
        "--enable-model-api",
        dest="enable_model_api",
        action="store_true",
        help="allow registering and unregistering models through the management API",
    )
    for key in ADDRESS_KEYS:
        parser.add_argument(
            f"--{key.replace('_', '-')}",
            dest=key,
            metavar="ADDRESS",
            help=f"our addition: {key} (http://host:port, https://... or unix:/path) over the config file's",
        )
    parser.add_argument(
        "--frontend-processes",
        dest="frontend_processes",
        type=int,
        metavar="N",
        help="our addition: frontend processes sharing the listening ports (frontend_processes; docs/scaling.md)",
    )
    parser.add_argument(
        "--log-config", dest="log_config", help="accepted for compatibility; logging is configured here"
    )
    parser.add_argument(
        "--workflow-store", dest="workflow_store", help="where POST /workflows finds .war files (default: model store)"
    )
    parser.add_argument("--plugins-path", "--ppath", dest="plugins_path", help="accepted for compatibility")
    return parser


def stop() -> int:
    pid = running_pid()
    if pid is None:
        print(NOT_RUNNING)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    pid_file().unlink(missing_ok=True)
    Path("key_file.json").unlink(missing_ok=True)
    print(STOPPED)
    return 0


def _config(args: argparse.Namespace) -> ServerConfig:
    options = CliOptions(
        ts_config=args.ts_config,
        model_store=args.model_store,
        workflow_store=args.workflow_store,
        models=tuple(args.models),
        ncs=args.ncs,
        disable_token_auth=args.disable_token_auth,
        enable_model_api=args.enable_model_api,
        addresses=tuple((key, getattr(args, key)) for key in ADDRESS_KEYS if getattr(args, key) is not None),
        frontend_processes=args.frontend_processes,
    )
    config = load_config(options, os.environ)
    if not config.model_store and config.load_models and any("=" not in m or m == "all" for m in config.load_models):
        raise ConfigError("Missing mandatory parameter --model-store")
    tls.check_config(config)
    return config


def run_foreground(config: ServerConfig) -> int:
    import uvloop

    from workers.allocator import keep_freed_memory

    from .http_limits import raise_fd_limit

    keep_freed_memory()
    raise_fd_limit()
    logs.setup_files(config.log_location)
    path = pid_file()
    path.write_text(str(os.getpid()))
    try:
        return uvloop.run(_serve(config))
    except ConfigError as err:
        print(f"modelserver: configuration error: {err}", file=sys.stderr)
        return 2
    finally:
        logs.close()
        if path.exists() and path.read_text().strip() == str(os.getpid()):
            path.unlink()


async def _serve(config: ServerConfig) -> int:
    if config.frontend_processes > 1:  # a supervisor of frontend processes (docs/scaling.md)
        from .supervisor import supervise

        return await supervise(config)
    from .app import ModelServer

    await ModelServer(config).serve_forever()
    return 0


def start_detached(argv: list[str]) -> int:
    """Re-run ourselves with ``--foreground`` in a new session, like ``torchserve --start``."""
    args = [sys.executable, "-m", "modelserver", *argv, "--foreground"]
    child = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL)
    pid_file().write_text(str(child.pid))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"modelserver {__version__}")
        return 0
    if args.stop:
        return stop()
    if running_pid() is not None and running_pid() != os.getpid():
        print(ALREADY_RUNNING)
        return 1
    logs.setup_console()
    try:
        config = _config(args)
    except ConfigError as err:
        print(f"modelserver: configuration error: {err}", file=sys.stderr)
        return 2
    for key in config.unknown_keys:
        logging.getLogger("modelserver.config").debug("unknown key kept: %s", key)
    if not args.foreground:
        return start_detached(argv)
    return run_foreground(config)
