"""Per-model settings, merged with TorchServe's precedence from the archive, ``models=`` and the defaults.

Precedence (TorchServe's ``ModelManager.createModel``):

- ``batchSize``/``maxBatchDelay``: an explicit API value > ``model-config.yaml`` (if > 0) > ``models=`` > 1 / 100 ms.
- ``responseTimeout``/``startupTimeout``: ``model-config.yaml`` > API / ``models=`` > the server defaults.
- ``minWorkers``/``maxWorkers``: a yaml with min > 0 and max >= min wins over ``models=``, which wins over
  ``default_workers_per_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .archive import ModelArtifact


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
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Defaults:
    """The server-wide values a model falls back to."""

    workers: int
    job_queue_size: int
    response_timeout: int
    startup_timeout: int


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
    low, high = _workers(yaml, entry, defaults.workers)
    device_ids = yaml.get("deviceIds") or ()
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
            _positive(api, "startupTimeout"),
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
    )
