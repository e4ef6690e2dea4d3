"""``MAR-INF/MANIFEST.json``: the fields, order and formatting torch-model-archiver 0.12.0 writes."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from .options import ARCHIVER_VERSION, ArchiveOptions

MANIFEST_ENTRY = "MAR-INF/MANIFEST.json"


def _basename(path: str | None) -> str | None:
    return os.path.basename(path) if path else None


def model_section(options: ArchiveOptions) -> dict[str, str]:
    """The ``model`` object: only the fields given, each file by its name in the archive root."""
    fields = {
        "modelName": options.model_name,
        "serializedFile": _basename(options.serialized_file),
        "handler": os.path.basename(options.handler),
        "modelFile": _basename(options.model_file),
        "modelVersion": options.version,
        "requirementsFile": _basename(options.requirements_file),
        "configFile": _basename(options.config_file),
    }
    return {key: value for key, value in fields.items() if value}


def build_manifest(options: ArchiveOptions, now: datetime | None = None) -> dict[str, Any]:
    created = (now or datetime.now()).strftime("%d/%m/%Y %H:%M:%S")
    return {
        "createdOn": created,
        "runtime": options.runtime,
        "model": model_section(options),
        "archiverVersion": ARCHIVER_VERSION,
    }


def manifest_text(manifest: dict[str, Any]) -> str:
    """Two-space indented JSON with no trailing newline, byte for byte what the real tool writes."""
    return json.dumps(manifest, indent=2)
