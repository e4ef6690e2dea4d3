"""Model artefacts: a model directory (TorchServe's ``no-archive`` format) read into a :class:`ModelArtifact`.

A model directory holds the handler and weights at its root and ``MAR-INF/MANIFEST.json``:
``{"runtime": "python", "model": {"modelName", "modelVersion", "handler", "serializedFile",
"modelFile", "configFile", ...}, "archiverVersion": ...}``. ``configFile`` names a
``model-config.yaml`` read with ``yaml.safe_load``. Archive files (``.mar``, ``.tar.gz``) are
unpacked into a private directory first and then read the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import BadRequest

MANIFEST_PATH = Path("MAR-INF") / "MANIFEST.json"
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")


class InvalidModel(BadRequest):
    type_name = "InvalidModelException"


@dataclass(frozen=True)
class ModelArtifact:
    name: str
    version: str
    model_dir: str
    handler: str
    manifest: Mapping[str, Any]
    yaml_config: Mapping[str, Any]


def name_from_path(path: Path) -> str:
    """TorchServe's fallback name: the file stem with every non-word character replaced by ``_``."""
    stem = path.name
    for suffix in (".tar.gz", ".mar", ".model"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.sub(r"\W", "_", stem)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidModel(f"Invalid model archive manifest {path}: {err}") from err
    if not isinstance(data, dict):
        raise InvalidModel(f"Invalid model archive manifest {path}: not a JSON object")
    return data


def _read_yaml(model_dir: Path, config_file: str) -> dict[str, Any]:
    path = (model_dir / config_file).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        raise InvalidModel(f"configFile {config_file!r} is outside the model directory")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InvalidModel(f"Invalid model config {config_file}: {err}") from err
    if not isinstance(data, dict):
        raise InvalidModel(f"Invalid model config {config_file}: not a mapping")
    return data


def read_model_dir(model_dir: Path, name: str | None = None, default_handler: str | None = None) -> ModelArtifact:
    """Read a model directory's manifest and config; ``name`` overrides the manifest's model name."""
    manifest_file = model_dir / MANIFEST_PATH
    manifest: dict[str, Any] = _read_json(manifest_file) if manifest_file.is_file() else {"model": {}}
    if manifest_file.is_file() and not manifest.get("runtime"):
        raise InvalidModel(f"Invalid model archive {model_dir.name}: runtime is not defined in the manifest")
    model = manifest.get("model")
    if not isinstance(model, dict):
        raise InvalidModel(f"Invalid model archive {model_dir.name}: manifest has no model section")
    model_name = name or model.get("modelName") or name_from_path(model_dir)
    if not MODEL_NAME_PATTERN.match(model_name):
        raise InvalidModel(f"Invalid model name: {model_name}")
    handler = model.get("handler") or default_handler
    if not handler:
        raise InvalidModel(f"Invalid model archive {model_dir.name}: no handler in the manifest")
    config_file = model.get("configFile")
    yaml_config = _read_yaml(model_dir, config_file) if config_file else {}
    return ModelArtifact(
        name=model_name,
        version=str(model.get("modelVersion") or "1.0"),
        model_dir=str(model_dir.resolve()),
        handler=str(handler),
        manifest=MappingProxyType(manifest),
        yaml_config=MappingProxyType(yaml_config),
    )


def open_artifact(path: Path, name: str | None = None, default_handler: str | None = None) -> ModelArtifact:
    """Open whatever ``path`` names: today a model directory; archive files arrive with the archive reader."""
    if path.is_dir():
        return read_model_dir(path, name, default_handler)
    if not path.exists():
        raise InvalidModel(f"Model not found at: {path}")
    raise InvalidModel(f"Unsupported model archive format: {path.name} (serve the model directory instead)")


def list_store(store: Path) -> list[Path]:
    """What ``load_models=all`` loads: non-hidden archives and directories in the model store, sorted."""
    entries = []
    for entry in sorted(store.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.name.endswith((".mar", ".model", ".tar.gz")):
            entries.append(entry)
    return entries
