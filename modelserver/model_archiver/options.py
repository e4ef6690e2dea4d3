"""What to archive, as given on the command line, and the one error the archiver reports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ARCHIVER_VERSION = "0.12.0"
"""The torch-model-archiver release whose behaviour and manifest we reproduce (``archiverVersion``)."""

ARCHIVE_FORMATS = {"default": ".mar", "zip-store": ".mar", "tgz": ".tar.gz", "no-archive": ""}
RUNTIMES = ("python", "python3")
BUILTIN_HANDLERS = frozenset(
    {
        "base_handler",
        "text_classifier",
        "image_classifier",
        "object_detector",
        "image_segmenter",
        "dali_image_classifier",
        "vllm_handler",
        "trt_llm_handler",
    }
)
"""TorchServe's built-in handler names: written to the manifest as they are, with no file to copy."""


class ArchiverError(Exception):
    """A refusal the command reports as ``ERROR - <message>`` with exit status 1."""


@dataclass(frozen=True)
class ArchiveOptions:
    model_name: str
    version: str
    handler: str
    serialized_file: str | None = None
    model_file: str | None = None
    extra_files: str | None = None
    runtime: str = "python"
    requirements_file: str | None = None
    config_file: str | None = None
    archive_format: str = "default"
    export_path: str = field(default_factory=os.getcwd)
    force: bool = False
