"""Config snapshots: TorchServe's ``SnapshotManager`` with its file-system serializer (spec section 9).

A snapshot is ``$LOG_LOCATION/config/<yyyyMMddHHmmssSSS>-{startup|snapshot|shutdown}.cfg``: every configuration
property plus ``model_snapshot``, a JSON document of the registered models::

    {"name": "20260101120000000-snapshot.cfg", "modelCount": 1, "created": 1767268800000,
     "models": {"kit": {"1.0": {"defaultVersion": true, "marName": "kit.mar", "minWorkers": 1, "maxWorkers": 1,
                                "batchSize": 1, "maxBatchDelay": 100, "responseTimeout": 120,
                                "startupTimeout": 120, "runtimeType": "python"}}}}

One is written when the server has started, after every management call that changed the models, and at shutdown;
``--ncs`` turns them off. A start without ``--ts-config`` (and without ``--ncs``) reads the newest one as its config
(:func:`modelserver.config.find_config_file`), and then ``model_snapshot`` replaces ``load_models``: every version is
registered again from ``marName`` in the model store, with the snapshot's workers, batch settings and timeouts, and
the snapshot's default versions. A missing archive stops the start with a clear error, as TorchServe's
InvalidSnapshotException does.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .archive import open_artifact
from .config import ServerConfig
from .errors import InvalidSnapshot, ServeError
from .model_version import ModelVersion
from .registry import ModelHost, ModelRegistry

logger = logging.getLogger("modelserver.snapshot")

SNAPSHOT_KEY = "model_snapshot"
KINDS = ("startup", "snapshot", "shutdown")
# Snapshot field -> ModelSpec field; the snapshot's value wins over the archive and models= when restoring.
_SPEC_FIELDS = {
    "minWorkers": "min_workers",
    "maxWorkers": "max_workers",
    "batchSize": "batch_size",
    "maxBatchDelay": "max_batch_delay_ms",
    "responseTimeout": "response_timeout",
    "startupTimeout": "startup_timeout",
}


# -- writing -------------------------------------------------------------------------------------


def snapshot_directory(config: ServerConfig) -> Path:
    return Path(config.log_location) / "config"


def save_snapshot(config: ServerConfig, registry: ModelRegistry, kind: str = "snapshot") -> Path | None:
    """Write a snapshot of ``kind``; None when snapshots are off or the write failed (which is only logged)."""
    if not config.config_snapshots:
        return None
    try:
        return _write(config, registry, kind)
    except OSError as err:
        logger.error("Error while saving a %s snapshot to %s: %s", kind, snapshot_directory(config), err)
        return None


_last_millis = 0  # the newest snapshot's time in this process: names only ever grow


def _write(config: ServerConfig, registry: ModelRegistry, kind: str) -> Path:
    global _last_millis
    directory = snapshot_directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    # A snapshot written in the same millisecond as the one before it (a stop right after a management call) takes
    # the next millisecond: sorted by name, "shutdown" would otherwise come before "snapshot".
    millis = max(int(time.time() * 1000), _last_millis + 1)
    properties = dict(config.properties)
    while True:  # a name is never reused: one taken by another process moves this one on a millisecond
        name = snapshot_name(kind, millis)
        properties[SNAPSHOT_KEY] = json.dumps(model_snapshot(registry, name, millis), indent=2)
        if _create(directory / name, render_properties(properties, millis)):
            _last_millis = millis
            logger.debug("Saved snapshot %s", name)
            return directory / name
        millis += 1


def _create(path: Path, text: str) -> bool:
    """Write ``text`` to a hidden file and link it to ``path``: readers never see half a snapshot. False if taken."""
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    part.write_text(text, encoding="utf-8")
    try:
        os.link(part, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        if path.exists():
            return False
        os.rename(part, path)
        return True
    finally:
        part.unlink(missing_ok=True)


def snapshot_name(kind: str, millis: int) -> str:
    """``yyyyMMddHHmmssSSS-<kind>.cfg`` in local time, as TorchServe names them; ``millis`` since the epoch."""
    seconds, rest = divmod(millis, 1000)
    return time.strftime("%Y%m%d%H%M%S", time.localtime(seconds)) + f"{rest:03d}-{kind}.cfg"


def model_snapshot(registry: ModelRegistry, name: str, millis: int) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for version in registry:
        if version.workflow is not None:  # a workflow's models go with their workflow, which snapshots do not keep
            continue
        spec = version.spec
        is_default = registry.default_version(spec.name) == spec.version
        models.setdefault(spec.name, {})[spec.version] = model_state(version, is_default)
    count = sum(len(versions) for versions in models.values())
    return {"name": name, "modelCount": count, "created": millis, "models": models}


def model_state(version: ModelVersion, is_default: bool) -> dict[str, Any]:
    """TorchServe's ``Model.getModelState``: what a restore needs to bring this version back."""
    spec = version.spec
    state = {
        "defaultVersion": is_default,
        "marName": mar_name(version),
        "minWorkers": spec.min_workers,
        "maxWorkers": spec.max_workers,
        "batchSize": spec.batch_size,
        "maxBatchDelay": spec.max_batch_delay_ms,
        "responseTimeout": spec.response_timeout,
        "startupTimeout": spec.startup_timeout,
        "runtimeType": str(spec.manifest.get("runtime") or "python"),
    }
    if spec.parallel.level > 0:  # as TorchServe: only a large model's state carries it (restored from its yaml)
        state["parallelLevel"] = spec.parallel.level
    return state


def mar_name(version: ModelVersion) -> str:
    """The archive's name in the model store: the downloaded file, else the last segment of the model's url."""
    if version.downloaded is not None:
        return version.downloaded.name
    url = version.spec.url
    path = urlsplit(url).path if "://" in url else url
    return Path(path).name


# -- java.util.Properties.store ------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}
_SPECIALS = "=:#!"


def render_properties(properties: Mapping[str, str], millis: int) -> str:
    """The text ``Properties.store`` writes: a comment, the date, then one escaped ``key=value`` per line."""
    date = time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(millis // 1000))
    lines = ["#Saving snapshot", f"#{date}"]
    lines += [f"{_escape(key, is_key=True)}={_escape(value, is_key=False)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


def _escape(text: str, is_key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " " and (is_key or index == 0):
            out.append("\\ ")
        elif char in _SPECIALS:
            out.append("\\" + char)
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


# -- restoring -----------------------------------------------------------------------------------


def has_model_snapshot(config: ServerConfig) -> bool:
    return SNAPSHOT_KEY in config.properties


def restore(host: ModelHost) -> list[ModelVersion]:
    """Register the snapshot's models again (replacing ``load_models``); InvalidSnapshot if one cannot be."""
    config = host.config
    entries = list(_entries(_parse(config.properties[SNAPSHOT_KEY])))
    _validate(entries, config.model_store)
    restored = []
    for name, key, info in entries:
        version = _restore_one(host, name, key, info)
        if version is not None:
            restored.append(version)
    for version in restored:
        version.scale(version.spec.min_workers, version.spec.max_workers)
    logger.info("Restored %d model version(s) from the config snapshot", len(restored))
    return restored


def _parse(text: str) -> Mapping[str, Any]:
    try:
        snapshot = json.loads(text)
    except ValueError as err:
        raise InvalidSnapshot(f"model_snapshot is not valid JSON: {err}") from None
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("models", {}), dict):
        raise InvalidSnapshot("model_snapshot must be an object with a models object")
    return snapshot


def _entries(snapshot: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for name, versions in snapshot.get("models", {}).items():
        if not isinstance(versions, dict):
            raise InvalidSnapshot(f"model_snapshot: the versions of model {name} must be an object")
        for key, info in versions.items():
            if not isinstance(info, dict) or not isinstance(info.get("marName"), str):
                raise InvalidSnapshot(f"model_snapshot: model {name}, version {key} has no marName")
            yield name, key, info


def _validate(entries: list[tuple[str, str, Mapping[str, Any]]], store: str | None) -> None:
    """Every archive must be in the model store before anything is registered (TorchServe's validate)."""
    for name, key, info in entries:
        mar = info["marName"]
        if store is None or not mar or Path(mar).name != mar or not (Path(store) / mar).exists():
            raise InvalidSnapshot(
                f"Model archive file for model :{name}, version :{key} not found in model store ({mar!r})"
            )


def _restore_one(host: ModelHost, name: str, key: str, info: Mapping[str, Any]) -> ModelVersion | None:
    store = Path(host.config.model_store or ".")
    default_handler = host.config.properties.get("default_service_handler")
    try:
        artifact = open_artifact(store / info["marName"], name, default_handler)
        version = host.create_version(
            artifact, url=info["marName"], overrides=spec_overrides(info), loaded_at_startup=True
        )
    except ServeError as err:
        logger.error("Failed to restore model %s version %s from the snapshot: %s", name, key, err.message)
        return None
    if info.get("defaultVersion") is True:
        host.registry.set_default(version.spec.name, version.spec.version)
    return version


def spec_overrides(info: Mapping[str, Any]) -> dict[str, int]:
    """The snapshot's settings as ModelSpec fields: workers when >= 0, the rest when > 0 (TorchServe ignores <= 0)."""
    overrides = {}
    for key, field_name in _SPEC_FIELDS.items():
        value = info.get(key)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (value > 0 or key.endswith("Workers") and value == 0)
        ):
            overrides[field_name] = value
    if "max_workers" in overrides and overrides["max_workers"] < overrides.get("min_workers", 0):
        overrides["max_workers"] = overrides.get("min_workers", 0)
    return overrides
