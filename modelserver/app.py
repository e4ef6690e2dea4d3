"""The running server: registry, listeners and their order of start and stop.

Start: load the startup models into the registry (their workers start loading in the
background), bind every listener, then print ``Model server started.``. Stop (SIGTERM/SIGINT):
close the listeners, let in-flight requests finish up to the drain timeout, stop the workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers import compiled_modules
from workers.protocol import MAX_FRAME_SIZE_LIMIT

from . import TORCHSERVE_VERSION, auth, grpc_server, http_limits, model_sync, snapshot, tls
from .archive import ModelArtifact, list_store, open_artifact, release
from .config import Address, ServerConfig
from .dialects import torchserve_http
from .dialects.angel import Angel
from .dialects.kserve_v1 import KServeV1
from .dialects.kserve_v2 import KServeV2
from .dialects.kserve_v2_repository import KServeV2Repository
from .dialects.mindspore import MindSpore
from .dialects.mindspore import settings as mindspore_settings
from .dialects.torchserve_inference import TorchServeInference
from .dialects.torchserve_management import TorchServeManagement
from .dialects.torchserve_metrics import TorchServeMetrics
from .dialects.torchserve_workflows import TorchServeWorkflowInference, TorchServeWorkflowManagement
from .downloads import DownloadPolicy
from .errors import InvalidSnapshot, ServeError
from .frontend_plan import FrontendRole, Peers
from .grpc_server import GrpcListener
from .http_server import ConnectionBudget, HttpServer, listening_sockets, unix_socket
from .listener import Listener
from .metrics import ServerMetrics
from .model_spec import Defaults, build_spec
from .model_version import ModelVersion
from .openapi import build_openapi
from .registry import ModelRegistry
from .types import ResultStream
from .workflows import WorkflowManager

if TYPE_CHECKING:
    from .h2.listener import NativeGrpcListener

logger = logging.getLogger("modelserver")

DRAIN_SECONDS = 30.0
TORCHSERVE_API_DESCRIPTION = "TorchServe is a flexible and easy to use tool for serving deep learning models"
"""The ``info.description`` of TorchServe's API descriptions (``OPTIONS /``, ``GET /api-description``)."""
STARTED_LINE = "Model server started."


def max_frame_size(config: ServerConfig, batch_size: int = 1) -> int:
    """Large enough for a full batch of maximum-size requests plus framing, within the wire's limit.

    Any size a user can configure must start (TorchServe's own test config sets ``max_response_size`` near 2 GiB):
    a size above the frame format's limit is clamped, and the clamp is logged once per size.
    """
    biggest_batch = max([1, batch_size, *(_batch_sizes(config.models))])
    wanted = 16 * 1024 * 1024 + max(config.max_request_size, config.max_response_size) * biggest_batch
    if wanted <= MAX_FRAME_SIZE_LIMIT:
        return wanted
    if wanted not in _clamped_sizes:
        _clamped_sizes.add(wanted)
        logger.warning(
            "max_request_size/max_response_size (%d/%d bytes, batch size %d) ask for frames of %d bytes between "
            "the frontend and a worker; the wire allows %d, so frames are capped there and a larger message fails "
            "with an error",
            config.max_request_size,
            config.max_response_size,
            biggest_batch,
            wanted,
            MAX_FRAME_SIZE_LIMIT,
        )
    return MAX_FRAME_SIZE_LIMIT


_clamped_sizes: set[int] = set()


def _batch_sizes(models: Any) -> list[int]:
    sizes = []
    for versions in models.values():
        for entry in versions.values():
            value = entry.get("batchSize") if isinstance(entry, dict) else None
            if isinstance(value, int) and value > 0:
                sizes.append(value)
    return sizes


class ModelServer:
    def __init__(self, config: ServerConfig, role: FrontendRole | None = None) -> None:
        self.config = config
        self.role = role or FrontendRole()
        """Which frontend process this is (``frontend_processes`` > 1); the default is the only one."""
        self.peers: Peers | None = None
        self.registry = ModelRegistry()
        self.workflows = WorkflowManager(self, DownloadPolicy.from_properties(config.properties))
        self.metrics = ServerMetrics.from_config(config, self._version_gauges)
        self.defaults = Defaults(
            workers=config.default_workers_per_model,
            job_queue_size=config.job_queue_size,
            response_timeout=config.default_response_timeout,
            startup_timeout=config.default_startup_timeout,
            protocol=config.default_protocol,
            envelope=config.service_envelope,
        )
        self._frame_size = max_frame_size(config)
        self.limits = http_limits.from_properties(config.properties)
        ResultStream.buffer_limit = self.limits.stream_buffer_size
        self._budget = ConnectionBudget(http_limits.connection_cap(self.limits))
        self._http: list[HttpServer] = []
        self._grpc: list[GrpcListener | NativeGrpcListener] = []
        self._oip_dialects: tuple[KServeV2, KServeV2Repository] | None = None
        self._ts_inference: TorchServeInference | None = None
        self._ts_management: TorchServeManagement | None = None
        self._stopped = asyncio.Event()
        self._descriptions: dict[int, dict[str, Any]] = {}
        self.auth = auth.from_config(config)
        self._ssl: ssl.SSLContext | None = None
        self.load_unknown: Callable[[str], Awaitable[ModelVersion]] | None = None
        """How the repository extension's ``load`` finds a model that is not registered, when something other than
        the model store knows it (a KServe ``ModelServer``'s ``ModelRepository``)."""

    def _version_gauges(self) -> list[tuple[str, str, int, int]]:
        return [(v.spec.name, v.spec.version, v.queue.pending, v.metrics.streams) for v in self.registry]

    # -- models ----------------------------------------------------------------------------------

    def startup_models(self) -> list[tuple[str | None, Path]]:
        """``load_models``: ``all`` or ``[name=]path`` entries, paths relative to the model store."""
        store = Path(self.config.model_store) if self.config.model_store else None
        entries: list[tuple[str | None, Path]] = []
        for item in self.config.load_models:
            if item.lower() == "all":
                if store is None:
                    raise ServeError("load_models=all needs a model store (--model-store)")
                entries.extend((None, path) for path in list_store(store))
                continue
            name, _, location = item.rpartition("=")
            path = Path(location)
            if not path.is_absolute() and store is not None:
                path = store / path
            entries.append((name or None, path))
        return entries

    def add_model(self, path: Path, name: str | None, loaded_at_startup: bool = False) -> ModelVersion:
        artifact = open_artifact(path, name, self.config.properties.get("default_service_handler"))
        version = self.create_version(artifact, url=path.name, loaded_at_startup=loaded_at_startup)
        spec = version.spec
        version.scale(spec.min_workers)
        logger.info(
            "Model %s version %s from %s: %d worker(s), batchSize %d, maxBatchDelay %d ms",
            spec.name,
            spec.version,
            path,
            spec.min_workers,
            spec.batch_size,
            spec.max_batch_delay_ms,
        )
        return version

    def create_version(
        self,
        artifact: ModelArtifact,
        *,
        url: str,
        api: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        loaded_at_startup: bool = False,
    ) -> ModelVersion:
        """Build a version from an opened artifact and add it to the registry (409 if it is there already).

        ``api``: a registration's settings, merged by TorchServe's precedence; ``overrides``: ModelSpec fields set
        last (a snapshot restore). No worker is started here. The artifact is released on failure.
        """
        try:
            entry = self.config.models.get(artifact.name, {}).get(artifact.version, {})
            spec = build_spec(artifact, entry, self.defaults, api, url=url, loaded_at_startup=loaded_at_startup)
            spec = dataclasses.replace(spec, **(overrides or {}))
            version = ModelVersion(
                spec,
                self.metrics.for_version(spec.name, spec.version),
                artifact=artifact,
                gpu_count=self.config.number_of_gpu,
                decode_input_request=self.config.decode_input_request,
                max_frame_size=max(self._frame_size, max_frame_size(self.config, spec.batch_size)),
                shared_memory=self.limits.worker_shared_memory,
                worker_environment=self.config.worker_environment(),
            )
            version.worker_cap = self.limits.max_workers_per_model
            version.pool.portion = (self.role.index, self.role.count)
            version.recipe = model_sync.recipe(artifact, url, api, loaded_at_startup)
            version.check_workers(spec.min_workers)
            self.registry.add(version)
        except BaseException:
            release(artifact)
            raise
        return version

    def load_startup_models(self) -> None:
        """``model_snapshot`` (a restart from a config snapshot) replaces ``load_models``."""
        if snapshot.has_model_snapshot(self.config):
            try:
                snapshot.restore(self)
            except InvalidSnapshot as err:
                raise SystemExit(f"modelserver: cannot restore the config snapshot: {err.message}") from None
            return
        for name, path in self.startup_models():
            try:
                self.add_model(path, name, loaded_at_startup=True)
            except ServeError as err:
                logger.error("Failed to load model from %s: %s", path, err.message)

    def save_snapshot(self, kind: str = "snapshot") -> None:
        """A config snapshot; with several frontend processes frontend 0 writes them (it applies every change)."""
        if self.role.index == 0:
            snapshot.save_snapshot(self.config, self.registry, kind)

    async def models_changed(self, wait: bool = False) -> None:
        """After a management call changed the models: the snapshot, and the change in every other frontend."""
        self.save_snapshot()
        if self.peers is not None:
            await self.peers.publish(wait)

    # -- listeners -------------------------------------------------------------------------------

    def listeners(self) -> list[tuple[Address, Listener]]:
        cfg = self.config
        inference = TorchServeInference(self.registry, lambda: self._describe(inference_listener))
        self._ts_inference = inference  # TorchServe's gRPC inference API answers Ping through it
        management = TorchServeManagement(self.registry, lambda: self._describe(management_listener), host=self)
        self._ts_management = management
        wf_management = TorchServeWorkflowManagement(self.workflows)
        wf_inference = TorchServeWorkflowInference(self.workflows)
        metrics = TorchServeMetrics(lambda: self._describe(metrics_listener), self.metrics)
        v2 = KServeV2(self.registry)
        kserve_root = cfg.default_protocol == "kserve"  # who answers GET /: KServe's liveness, or TorchServe's 405
        repository = KServeV2Repository(self.registry, v2, host=self)
        self._oip_dialects = (v2, repository)  # the OIP's gRPC API answers through them too
        kserve = [KServeV1(self.registry, kserve_root), v2, repository]
        if cfg.metrics_address != cfg.inference_address:  # KServe serves /metrics on its inference port too
            kserve.append(TorchServeMetrics(lambda: self._describe(inference_listener), self.metrics))
        ms_status, ms_address = mindspore_settings(cfg.properties)
        tensor_apis = {
            "mindspore": [MindSpore(self.registry, ms_status)],
            "angel": [Angel(self.registry, self.metrics)],
        }
        families = {"torchserve": [inference, wf_inference], "kserve": kserve, **tensor_apis}
        served = [dialect for family in cfg.inference_protocols for dialect in families.get(family, ())]
        resolve = {"protocol_of": self.registry.protocol_of, "default_protocol": cfg.default_protocol}
        if not cfg.serve_management:
            inference_listener = management_listener = Listener("inference", served, cfg.max_request_size, **resolve)
            result = [(cfg.inference_address, inference_listener)]
        elif cfg.inference_address == cfg.management_address:
            inference_listener = management_listener = Listener(
                "inference", [*served, management, wf_management], cfg.max_request_size, **resolve
            )
            result = [(cfg.inference_address, inference_listener)]
        else:
            inference_listener = Listener("inference", served, cfg.max_request_size, **resolve)
            management_listener = Listener("management", [management, wf_management], cfg.max_request_size, **resolve)
            result = [(cfg.inference_address, inference_listener), (cfg.management_address, management_listener)]
        if ms_address is not None:  # MindSpore's own port (5500 by convention): every path is MindSpore's
            own = MindSpore(self.registry, ms_status, own_listener=True)
            tensor_apis["mindspore_port"] = [own]
            result.append((ms_address, Listener("mindspore", [own], cfg.max_request_size, **resolve)))
        metrics_listener = Listener("metrics", [metrics], cfg.max_request_size)
        if self.metrics.settings.api_enabled:  # enable_metrics_api=false: no metrics port at all
            result.append((cfg.metrics_address, metrics_listener))
        for _, listener in result:
            listener.observers.append(self.metrics.observe_status)  # Requests2XX/4XX/5XX
        if self.auth is not None:
            others = [*kserve, *(dialect for group in tensor_apis.values() for dialect in group)]
            scopes = {
                inference: auth.INFERENCE,
                wf_inference: auth.INFERENCE,
                management: auth.MANAGEMENT,
                wf_management: auth.MANAGEMENT,
                **dict.fromkeys(others, auth.INFERENCE),
            }
            auth.protect(self.auth, [listener for _, listener in result], scopes)
        return result

    def _describe(self, listener: Listener) -> dict[str, Any]:
        key = id(listener)
        if key not in self._descriptions:
            self._descriptions[key] = build_openapi(
                listener.router.routes, "TorchServe APIs", TORCHSERVE_VERSION, TORCHSERVE_API_DESCRIPTION
            )
        return self._descriptions[key]

    async def _bind(self, address: Address, listener: Listener) -> None:
        backlog = self.limits.listen_backlog
        if address.scheme == "unix" and self.role.index > 0:  # a Unix socket has no SO_REUSEPORT: frontend 0 serves it
            logger.info("%s API on %s: served by frontend 0", listener.name.title(), address)
            return
        try:
            if address.scheme == "unix":
                Path(address.path).unlink(missing_ok=True)
                socks = [unix_socket(address.path, backlog)]
            else:
                socks = listening_sockets(address.host, address.port, backlog, reuse_port=self.role.count > 1)
        except OSError as err:  # a port in use or not ours to take: one clear line, no traceback
            why = err.strerror or str(err)
            logger.error("Cannot bind the %s API to %s: %s", listener.name, address, why)
            raise SystemExit(f"modelserver: cannot bind the {listener.name} API to {address}: {why}") from None
        http_server = HttpServer(listener, self.limits, self._budget, self._ssl if address.is_tls else None)
        http_server.serve(socks)
        self._http.append(http_server)
        logger.info("%s API bound to: %s", listener.name.title(), address)

    async def _start_grpc(self) -> None:
        """The gRPC APIs whose addresses are set (:mod:`.grpc_server`): the OIP's, TorchServe's two."""
        props = self.config.properties
        services: list[tuple[str, Address, Callable[[], Any]]] = []
        address = grpc_server.oip_address(props)
        if address is not None and self._oip_dialects is not None:
            from .grpc_oip import OIPService

            dialects = self._oip_dialects
            services.append(("OIP", address, lambda: OIPService(*dialects, auth=self.auth).handler()))
        address = grpc_server.torchserve_address(props, "inference")
        if address is not None and self._ts_inference is not None:
            from .grpc_torchserve import TorchServeInferenceService, sequence_headers

            inference, sequence = self._ts_inference, sequence_headers(props)
            make = lambda: TorchServeInferenceService(self.registry, inference, self.auth, sequence).handler()  # noqa: E731
            services.append(("TorchServe inference", address, make))
        address = grpc_server.torchserve_address(props, "management")
        if address is not None and self._ts_management is not None:
            from .grpc_torchserve_management import TorchServeManagementService

            management = self._ts_management
            services.append(
                ("TorchServe management", address, lambda: TorchServeManagementService(management, self.auth).handler())
            )
        files = (props.get("certificate_file"), props.get("private_key_file"))
        kind: Any = grpc_server.GrpcListener
        if services and grpc_server.transport(props) == "native":
            from .h2.listener import NativeGrpcListener

            kind = functools.partial(
                NativeGrpcListener, reuse_port=self.role.count > 1, limits=self.limits, budget=self._budget
            )
        for name, address, handler in services:
            listener = kind(
                name,
                address,
                [handler()],
                max_receive=self.config.max_request_size,
                max_send=self.config.max_response_size,
                tls_files=(files[0], files[1]) if files[0] and files[1] else None,
            )
            await listener.start()
            self._grpc.append(listener)

    async def start(self) -> None:
        torchserve_http.configure_cors(self.config.properties)
        self._ssl = tls.server_context(self.config)
        first = self.role.index == 0 and not self.role.restarted
        if self.auth is not None and first:
            self.auth.write_key_file()
        self.metrics.start(system=self.role.index == 0)
        if self.peers is None:
            self.load_startup_models()
        else:
            await self.peers.join(self.load_startup_models)
        await asyncio.sleep(0)  # the new workers' tasks spawn their processes now: they start while the rest starts
        for address, listener in self.listeners():
            await self._bind(address, listener)
        await self._start_grpc()
        if not self.role.restarted:
            self.save_snapshot("startup")
        gc.collect()
        gc.freeze()  # what start-up built stays: full collections need not walk it again (no stalls on requests)
        if self.role.index == 0:
            logger.info("Hot path: %s", compiled_modules.describe())
        if self.peers is None:
            print(STARTED_LINE, flush=True)
        else:
            self.peers.started()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        await self.start()
        await self._stopped.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        """Stop as SIGTERM does (from the loop's thread)."""
        self._stopped.set()

    def _on_signal(self) -> None:
        if self._stopped.is_set():
            logger.warning("Second stop signal: exiting now")
            sys.exit(1)
        self._stopped.set()

    async def shutdown(self, drain: float = DRAIN_SECONDS) -> None:
        logger.info("Stopping: no new connections, draining in-flight requests")
        self.save_snapshot("shutdown")
        for http_server in self._http:
            http_server.stop_accepting()
        # Every connection answers what it received (the last answer says Connection: close); idle ones close now.
        await asyncio.gather(
            *(http_server.drain(drain) for http_server in self._http), *(grpc.stop(drain) for grpc in self._grpc)
        )
        logger.info("Listeners closed; stopping workers")
        await self.registry.stop()
        await self.workflows.stop()
        self.metrics.close()
        if self.auth is not None and self.role.index == 0:
            self.auth.remove_key_file()
        logger.info("Model server stopped.")
