"""Per-model settings, merged with TorchServe's precedence from the archive, ``models=`` and the defaults.

Precedence (TorchServe's ``ModelManager.createModel``):

- ``batchSize``/``maxBatchDelay``: an explicit API value > ``model-config.yaml`` (if > 0) > ``models=`` > 1 / 100 ms.
- ``responseTimeout``/``startupTimeout``: ``model-config.yaml`` > API / ``models=`` > the server defaults.
- ``minWorkers``/``maxWorkers``: a yaml with min > 0 and max >= min wins over ``models=``, which wins over
  ``default_workers_per_model``.

Our own keys, in ``model-config.yaml`` or a ``models=`` entry (yaml wins): ``protocol`` (what the routes several
protocols share mean for this model: ``torchserve``, ``kserve`` or ``angel``; default ``kserve`` for a KServe model,
else ``default_protocol``), ``workerRuntime`` (what the worker runs: ``torchserve`` for a TorchServe handler,
``kserve`` for a KServe ``Model`` subclass, ``servable`` for a module of named methods) and ``serviceEnvelope`` (a
TorchServe request envelope for this model; default ``service_envelope``).

``parallelType``/``parallelLevel``/``torchrun`` make each worker a group of ranks (:mod:`modelserver.parallel`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .archive import ModelArtifact
from .errors import BadRequest
from .parallel import NO_PARALLEL, ParallelSettingError, ParallelSettings, parallel_settings

PROTOCOLS = ("torchserve", "kserve", "angel")
"""The model protocols: they decide what a route shared by several protocols means for a model."""
RUNTIMES = ("torchserve", "kserve", "servable")
"""What a worker can run (the ``load`` message's ``runtime``)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    model_dir: str
    handler: str
    manifest: Mapping[str, Any]
    yaml_config: Mapping[str, Any]
    batch_size: int = 1
    max_batch_delay_ms: int = 100
    min_workers: int = 1
    max_workers: int = 1
    response_timeout: int = 120
    startup_timeout: int = 120
    max_retry_timeout: int = 300
    client_timeout_ms: int = 0
    job_queue_size: int = 100
    device_type: str = "cpu"
    device_ids: tuple[int, ...] = ()
    url: str = ""
    loaded_at_startup: bool = False
    protocol: str = "torchserve"
    runtime: str = "torchserve"
    envelope: str = ""
    parallel: ParallelSettings = NO_PARALLEL
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Defaults:
    """The server-wide values a model falls back to."""

    workers: int
    job_queue_size: int
    response_timeout: int
    startup_timeout: int
    protocol: str = "torchserve"
    envelope: str = ""


def _at_least_zero(mapping: Mapping[str, Any], key: str) -> int | None:
    """An API setting as registered (``-1`` means "not given")."""
    value = mapping.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _positive(mapping: Mapping[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _first(*values: int | None, default: int) -> int:
    return next((v for v in values if v is not None), default)


def _workers(yaml: Mapping[str, Any], entry: Mapping[str, Any], default: int) -> tuple[int, int]:
    ymin, ymax = yaml.get("minWorkers"), yaml.get("maxWorkers")
    if isinstance(ymin, int) and isinstance(ymax, int) and ymin > 0 and ymax >= ymin:
        return ymin, ymax
    low = _positive(entry, "minWorkers")
    low = default if low is None else low
    high = _positive(entry, "maxWorkers")
    return low, max(low, high if high is not None else low)


class InvalidModelSetting(BadRequest):
    """A model's ``protocol`` or ``workerRuntime`` is not one we know."""

    def __init__(self, model_name: str, key: str, value: Any, known: tuple[str, ...]) -> None:
        choices = ", ".join(repr(k) for k in known if k)
        super().__init__(f"Invalid {key} {value!r} for model {model_name}; expected one of {choices}")


def _choice(
    name: str, key: str, yaml: Mapping[str, Any], entry: Mapping[str, Any], default: str, known: tuple[str, ...]
) -> str:
    value = yaml.get(key, entry.get(key, default))
    text = str(value).strip().lower() if value is not None else default
    if text not in known:
        raise InvalidModelSetting(name, key, value, known)
    return text


def _default_protocol(runtime: str, defaults: Defaults) -> str:
    """A KServe model speaks KServe's protocol unless it says otherwise; others the server's default."""
    return "kserve" if runtime == "kserve" else defaults.protocol


def build_spec(
    artifact: ModelArtifact,
    entry: Mapping[str, Any],
    defaults: Defaults,
    api: Mapping[str, Any] | None = None,
    url: str = "",
    loaded_at_startup: bool = False,
) -> ModelSpec:
    """Merge one model version's settings: ``api`` (management call) > yaml > ``entry`` (``models=``) > defaults."""
    api = api or {}
    yaml = artifact.yaml_config
    runtime = _choice(artifact.name, "workerRuntime", yaml, entry, "torchserve", RUNTIMES)
    low, high = _workers(yaml, entry, defaults.workers)
    device_ids = yaml.get("deviceIds") or ()
    try:
        parallel = parallel_settings(yaml)
    except ParallelSettingError as err:
        raise BadRequest(f"Invalid torchrun settings for model {artifact.name}: {err}") from None
    return ModelSpec(
        name=artifact.name,
        version=artifact.version,
        model_dir=artifact.model_dir,
        handler=artifact.handler,
        manifest=artifact.manifest,
        yaml_config=yaml,
        batch_size=_first(
            _positive(api, "batchSize"), _positive(yaml, "batchSize"), _positive(entry, "batchSize"), default=1
        ),
        max_batch_delay_ms=_first(
            _positive(api, "maxBatchDelay"),
            _positive(yaml, "maxBatchDelay"),
            _positive(entry, "maxBatchDelay"),
            default=100,
        ),
        min_workers=low,
        max_workers=high,
        response_timeout=_first(
            _positive(yaml, "responseTimeout"),
            _positive(api, "responseTimeout"),
            _positive(entry, "responseTimeout"),
            default=defaults.response_timeout,
        ),
        startup_timeout=_first(
            _positive(yaml, "startupTimeout"),
            _at_least_zero(api, "startupTimeout"),  # TorchServe honours startup_timeout=0: no worker can start
            _positive(entry, "startupTimeout"),
            default=defaults.startup_timeout,
        ),
        max_retry_timeout=_first(_positive(yaml, "maxRetryTimeoutInSec"), default=300),
        client_timeout_ms=_first(_positive(yaml, "clientTimeoutInMills"), default=0),
        job_queue_size=_first(_positive(yaml, "jobQueueSize"), default=defaults.job_queue_size),
        device_type=str(yaml.get("deviceType", "cpu")),
        device_ids=tuple(int(i) for i in device_ids if isinstance(i, int) and i >= 0),
        url=url,
        loaded_at_startup=loaded_at_startup,
        protocol=_choice(artifact.name, "protocol", yaml, entry, _default_protocol(runtime, defaults), PROTOCOLS),
        runtime=runtime,
        envelope=str(yaml.get("serviceEnvelope", entry.get("serviceEnvelope", defaults.envelope)) or "").strip(),
        parallel=parallel,
    )
