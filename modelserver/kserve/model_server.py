"""KServe's ``ModelServer``: serve the models a KServe script built, on this server.

``ModelServer(...).start([model])`` registers the models that are ready (KServe's rule: a model that is not ready is
not registered, and none ready is an error), calls ``start()`` on every model, and serves KServe's V1 and Open
Inference Protocol REST APIs (and ``/metrics``) on ``http_port``, and, with ``enable_grpc`` (KServe's default), the
Open Inference Protocol's gRPC API on ``grpc_port`` (:mod:`modelserver.grpc_oip`), until SIGTERM or SIGINT, then
stops the models.

With ``workers=1`` (KServe's default) each model serves in this process: the very object the script built, its async
hooks on the server's loop as in KServe, its synchronous ones on a thread of its own (:mod:`modelserver.local_worker`),
so a slow synchronous model never blocks the server. With
``workers=N`` each model gets N worker processes, each building its own copy of the model the way the script did:
the model's class is imported from the script's file (as a module, so its ``if __name__ == "__main__"`` block does
not run, as Python's ``multiprocessing`` does) and called with the arguments the script passed to it, which must
be plain values (strings, numbers, lists, dicts). A dead worker process is restarted, and the N processes use
more than one core.

The flags are KServe's (``kserve.model_server.parser``), read when a ``ModelServer`` is made; which of them this
server honours is in docs/kserve.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import logging
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import msgpack

from workers.kserve_api import ModelRepository, PredictorConfig
from workers.kserve_api.constants import DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT
from workers.kserve_api.context import set_predictor_config
from workers.kserve_api.errors import NoModelReady
from workers.kserve_api.server_args import parse_known_args, parser
from workers.runtimes.kserve import KServeRuntime

from ..app import ModelServer as Server
from ..config import Address, ServerConfig
from ..local_worker import LocalWorker
from ..model_spec import ModelSpec
from ..model_version import ModelVersion

logger = logging.getLogger("kserve")


def __getattr__(name: str) -> Any:
    """``args``, as ``kserve.model_server.args``: KServe parses ``sys.argv`` when the module is imported; here on
    first use, so importing this module never reads the command line."""
    if name == "args":
        args = parse_known_args()
        globals()["args"] = args
        return args
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


IN_PROCESS_DEPTH = 64
"""Batches an in-process model runs at once: KServe runs every request it gets concurrently on its loop."""


class ModelServer:
    """KServe 0.21's ``ModelServer`` signature; the defaults are the command line's (``parser``) as in KServe."""

    def __init__(
        self,
        http_port: int | None = None,
        grpc_port: int | None = None,
        workers: int | None = None,
        max_threads: int | None = None,
        max_asyncio_workers: int | None = None,
        registered_models: ModelRepository | None = None,
        enable_grpc: bool | None = None,
        enable_docs_url: bool | None = None,
        enable_latency_logging: bool | None = None,
        access_log_format: str | None = None,
        event_loop: str | None = None,
        timeout_keep_alive: int | None = None,
        grace_period: int = 30,
        predictor_config: Any = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        **kwargs: Any,
    ) -> None:
        args, _ = parser.parse_known_args()
        self.ssl_certfile = args.ssl_certfile if ssl_certfile is None else ssl_certfile
        self.ssl_keyfile = args.ssl_keyfile if ssl_keyfile is None else ssl_keyfile
        self.http_port = args.http_port if http_port is None else http_port
        if self.ssl_certfile and self.ssl_keyfile and self.http_port == DEFAULT_HTTP_PORT:
            self.http_port = DEFAULT_HTTPS_PORT  # KServe: HTTPS on its own default port unless a port was chosen
            logger.info("SSL enabled, switching listen port to %d", self.http_port)
        self.grpc_port = args.grpc_port if grpc_port is None else grpc_port
        self.workers = max(1, int(args.workers if workers is None else workers))
        self.max_threads = args.max_threads if max_threads is None else max_threads
        self.max_asyncio_workers = args.max_asyncio_workers if max_asyncio_workers is None else max_asyncio_workers
        self.enable_grpc = args.enable_grpc if enable_grpc is None else enable_grpc
        self.enable_docs_url = args.enable_docs_url if enable_docs_url is None else enable_docs_url
        latency = args.enable_latency_logging if enable_latency_logging is None else enable_latency_logging
        self.enable_latency_logging = bool(latency)
        self.access_log_format = access_log_format
        self.event_loop = args.event_loop if event_loop is None else event_loop  # accepted; the loop is uvloop
        self.timeout_keep_alive = args.timeout_keep_alive if timeout_keep_alive is None else timeout_keep_alive
        self.grace_period = grace_period
        self.registered_models = registered_models if registered_models is not None else ModelRepository()
        if predictor_config is None:  # as KServe: from the --predictor_* flags
            predictor_config = PredictorConfig(
                predictor_host=args.predictor_host,
                predictor_protocol=args.predictor_protocol,
                predictor_use_ssl=args.predictor_use_ssl,
                predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
                predictor_request_retries=args.predictor_request_retries,
                predictor_health_check=args.enable_predictor_health_check,
            )
        self.predictor_config = predictor_config
        set_predictor_config(predictor_config)
        self._exception_handler: Callable[..., Any] | None = None
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- KServe's API ------------------------------------------------------------------------------

    def register_model(self, model: Any, name: str | None = None) -> None:
        name = name or getattr(model, "name", None)
        if not name:
            raise Exception("Failed to register model, model.name must be provided.")
        self.registered_models.update(model, name)
        logger.info("Registering model: %s", name)

    def register_exception_handler(self, handler: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]) -> None:
        """The event loop's exception handler, as KServe sets it."""
        self._exception_handler = handler

    def default_exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        logger.error("Caught an unhandled exception in the event loop: %s", context.get("message"))
        loop.default_exception_handler(context)

    def start(self, models: list[Any]) -> None:
        """Register the ready models, ``start()`` every model, serve until SIGTERM/SIGINT (blocking)."""
        if not isinstance(models, list):
            raise RuntimeError("Unknown model collection type")
        if not all(_is_kserve_model(model) for model in models):
            raise RuntimeError("Model type should be 'BaseKServeModel'")
        for model in models:
            if getattr(model, "ready", False):
                self.register_model(model)
                model.enable_latency_logging = self.enable_latency_logging
        not_ready = [model for model in models if not getattr(model, "ready", False)]
        if models and len(not_ready) == len(models):
            raise NoModelReady(not_ready)
        for model in models:
            model.start()
        if not logging.getLogger().handlers:  # KServe logs to the console unless the script configured logging
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        import uvloop

        from workers.allocator import keep_freed_memory

        keep_freed_memory()  # large tensors reuse freed heap, as in the model store's server
        uvloop.run(self._serve())

    def _forget(self, name: str, model: Any) -> None:
        """The model stopped serving (unloaded, or the server stops): KServe's repository ``unload`` stops it and
        forgets it; a model the repository does not hold is only stopped."""
        if self.registered_models.get_model(name) is model:
            self.registered_models.unload(name)
        else:
            model.stop()

    def stop(self, sig: int | None = None) -> None:
        """Stop serving (from a signal handler or another thread): the models are stopped after the server."""
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._server.request_stop)

    # -- serving ---------------------------------------------------------------------------------

    def config(self) -> ServerConfig:
        properties = {
            "metrics_mode": "prometheus",
            "enable_metrics_api": "false",
            "disable_token_authorization": "true",
        }
        scheme = "http"
        if self.ssl_certfile and self.ssl_keyfile:  # KServe's --ssl_certfile/--ssl_keyfile: HTTPS on http_port
            scheme = "https"
            properties.update({"certificate_file": self.ssl_certfile, "private_key_file": self.ssl_keyfile})
        address = Address(scheme, "0.0.0.0", int(self.http_port))
        if self.enable_grpc:  # KServe's default: the Open Inference Protocol's gRPC API on grpc_port too
            properties["oip_grpc_address"] = f"http://0.0.0.0:{int(self.grpc_port)}"
        return ServerConfig(  # no TorchServe management or metrics port: KServe serves /metrics on http_port
            inference_address=address,
            management_address=address,
            default_workers_per_model=self.workers,
            enable_model_api=True,
            disable_token_authorization=True,
            default_protocol="kserve",
            inference_protocols=("kserve",),
            serve_management=False,
            config_snapshots=False,
            properties=properties,
        )

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._exception_handler or self.default_exception_handler)
        if self.max_asyncio_workers:  # KServe's meaning: the size of the loop's default executor
            self._loop.set_default_executor(ThreadPoolExecutor(self.max_asyncio_workers))
        server = self._server = Server(self.config())
        server.load_unknown = self._load_from_repository
        for name, model in self.registered_models.get_models().items():
            self._add(server, name, model)
        # What the script imported and built is there for good (a KServe script brings fastapi, pydantic, grpc...):
        # out of the collector's reach, full collections stop walking it, which stalled the loop for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            await server.serve_forever()
        finally:
            self._server = None
            for model in self.registered_models.get_models().values():
                if self.workers > 1:
                    model.stop()

    async def _load_from_repository(self, name: str) -> ModelVersion:
        """The repository extension's ``load`` of a model not served yet: KServe's ``ModelRepository.load(name)``
        (sync or async; it registers the model and answers whether it loaded), then serve what it registered."""
        repository = self.registered_models
        try:
            loaded = repository.load(name)
            if inspect.isawaitable(loaded):
                loaded = await loaded
        except Exception as err:
            raise model_not_ready_detail(name, f" Error type: {type(err)} error msg: {err}") from None
        model = repository.get_model(name)
        if not loaded or model is None or not getattr(model, "ready", False):
            raise model_not_ready_detail(name, "")
        assert self._server is not None
        return self._add(self._server, name, model)

    def _add(self, server: Server, name: str, model: Any) -> ModelVersion:
        spec = ModelSpec(
            name=name,
            version="1",
            model_dir=os.getcwd(),
            handler="",
            manifest={},
            yaml_config={},
            batch_size=1,
            max_batch_delay_ms=1,
            min_workers=self.workers,
            max_workers=self.workers,
            response_timeout=600,
            protocol="kserve",
            runtime="kserve",
        )
        metrics = server.metrics.for_version(name, spec.version)
        if self.workers == 1:
            executor = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")  # its synchronous hooks, in order
            runtime = KServeRuntime(model, spec.version, executor=executor)

            def make_worker(worker_id: int, plan: Any, gpu_id: int | None) -> LocalWorker:
                return LocalWorker(worker_id, plan, runtime, on_stop=lambda: self._forget(name, model))

            version = ModelVersion(spec, metrics, make_worker=make_worker, depth=IN_PROCESS_DEPTH)
            version.health = partial(model_healthy, model)  # the very object: its readiness, asked as KServe asks it
        else:
            spec = dataclasses.replace(spec, **_process_settings(model, self))
            version = ModelVersion(spec, metrics)
        server.registry.add(version)
        version.scale(spec.min_workers)
        return version


def _is_kserve_model(model: Any) -> bool:
    """An instance of KServe's ``BaseKServeModel``: ours (``modelserver.kserve``) or the real package's."""
    return any(cls.__name__ == "BaseKServeModel" for cls in type(model).__mro__)


async def model_healthy(model: Any) -> bool:
    """KServe's readiness of a model: its ``healthy()`` (``ready``, unless the model says otherwise), sync or async."""
    healthy = model.healthy()
    if inspect.isawaitable(healthy):
        healthy = await healthy
    return bool(healthy)


def model_not_ready_detail(name: str, detail: str) -> Exception:
    from ..dialects.kserve_http import KServeError

    return KServeError(f"Model with name {name} is not ready.{detail}", 503)


def _process_settings(model: Any, server: ModelServer) -> dict[str, Any]:
    """Where a worker process finds the model's class, and the arguments it was built with."""
    cls = type(model)
    if "<locals>" in cls.__qualname__:
        raise ValueError(f"workers > 1: {cls.__qualname__} must be defined at the top level of its module")
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" and path:
        directory, handler = str(Path(path).resolve().parent), f"{Path(path).resolve()}:{cls.__qualname__}"
    else:
        directory, handler = os.getcwd(), f"{cls.__module__}:{cls.__qualname__}"
    args, kwargs = getattr(model, "_init_args", ((model.name,), {}))
    try:
        msgpack.packb([list(args), dict(kwargs)])
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(
            f"workers > 1: the arguments {cls.__qualname__} was built with must be plain values (str, numbers, lists, "
            f"dicts) to build it again in a worker process: {err}"
        ) from None
    extra: dict[str, Any] = {
        "model_args": list(args),
        "model_kwargs": dict(kwargs),
        "latency_logging": bool(getattr(model, "enable_latency_logging", False)),
    }
    config = server.predictor_config
    extra["predictor_config"] = {
        "predictor_host": config.predictor_host,
        "predictor_protocol": config.predictor_protocol,
        "predictor_use_ssl": config.predictor_use_ssl,
        "predictor_request_timeout_seconds": config.predictor_request_timeout_seconds,
        "predictor_request_retries": config.predictor_request_retries,
        "predictor_health_check": config.predictor_health_check,
    }
    return {"model_dir": directory, "handler": handler, "extra": extra}
