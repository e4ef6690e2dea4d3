"""``ts.utils.util``: the helpers handlers import from TorchServe, with TorchServe's signatures and behaviour."""

from __future__ import annotations

import inspect
import json
import logging
import os
from itertools import repeat
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)


class PredictionException(Exception):
    """Raise from a handler to answer the whole batch with ``error_code`` and ``message``."""

    def __init__(self, message: str, error_code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    def __str__(self) -> str:
        return f"{self.message} : {self.error_code}"


def list_classes_from_module(module: ModuleType, parent_class: type | None = None) -> list[type]:
    """Classes defined in ``module`` itself, optionally only subclasses of ``parent_class``."""
    classes = [
        member for _, member in inspect.getmembers(module, inspect.isclass) if member.__module__ == module.__name__
    ]
    if parent_class is None:
        return classes
    return [cls for cls in classes if issubclass(cls, parent_class)]


def load_label_mapping(mapping_file_path: str) -> dict[str, str] | None:
    """Read ``{class id: label}`` JSON (e.g. ``index_to_name.json``); None with a warning if the file is missing.

    A list value keeps its last element; the older ``{"object_type_names": [...]}`` form is accepted.
    """
    if not os.path.isfile(mapping_file_path):
        logger.warning("%r is missing. Inference output will not include class name.", mapping_file_path)
        return None
    with open(mapping_file_path) as f:
        mapping = json.load(f)
    if not isinstance(mapping, dict):
        raise Exception('index->name JSON mapping should be in "class": "label" format.')
    names = mapping.get("object_type_names")
    if isinstance(names, list):
        return {str(i): name for i, name in enumerate(names)}
    return {key: _label_of(value) for key, value in mapping.items()}


def _label_of(value: Any) -> str:
    label = value[-1] if isinstance(value, list) else value
    if not isinstance(label, str):
        raise Exception("labels in index->name mapping must be either str or List[str]")
    return label


def map_class_to_label(
    probs: list[list[Any]], mapping: dict[str, str] | None = None, lbl_classes: list[list[Any]] | None = None
) -> list[dict[str, Any]]:
    """Per row, ``{label (or str(class id)): probability}``; classes default to ``range(len(row))``."""
    if not isinstance(probs, list):
        raise Exception("Convert classes to list before doing mapping")
    if mapping is not None and not isinstance(mapping, dict):
        raise Exception("Mapping must be a dict")
    classes = lbl_classes if lbl_classes is not None else repeat(range(len(probs[0])), len(probs))
    # Like TorchServe, pairs are cut at the shorter side (zip without strict).
    return [
        {_label(cls, mapping): prob for cls, prob in zip(row_classes, row, strict=False)}
        for row_classes, row in zip(classes, probs, strict=False)
    ]


def _label(cls: Any, mapping: dict[str, str] | None) -> str:
    return mapping[str(cls)] if mapping is not None else str(cls)


def get_yaml_config(yaml_file_path: str) -> dict[str, Any]:
    """Parse a ``model-config.yaml``-style file."""
    import yaml  # only handlers that ask for YAML need PyYAML

    with open(yaml_file_path) as file:
        return yaml.safe_load(file)
