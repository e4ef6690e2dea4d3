"""The ``model-archiver`` command: torch-model-archiver 0.12.0's flags, defaults and messages."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .options import ARCHIVE_FORMATS, RUNTIMES, ArchiveOptions, ArchiverError
from .packer import create_archive, logger

FORMAT_HELP = """The format in which the model artifacts are archived.
"default": <model-name>.mar, a deflated zip (the format TorchServe hosts natively).
"zip-store": <model-name>.mar, stored without compression (faster to create).
"tgz": <model-name>.tar.gz, every file under a <model-name>/ directory.
"no-archive": the files and MAR-INF/MANIFEST.json in the directory export-path/<model-name>."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-archiver",
        description="Package a model for TorchServe or modelserver (compatible with torch-model-archiver 0.12.0).",
        formatter_class=argparse.RawTextHelpFormatter,
    )
    add = parser.add_argument
    add("--model-name", required=True, help="Model name; the output is <model-name>.mar (or .tar.gz, or a directory).")
    add("--serialized-file", help="Weights: a .pt/.pth state_dict, TorchScript or ONNX file: what the handler loads.")
    add("--model-file", help="Python file with the model architecture (eager mode).")
    add("--handler", required=True, help="A built-in handler name, or a handler file: path/to/file.py[:function].")
    add("--extra-files", help="Comma separated files, directories (their contents go to the archive root) and globs.")
    add("--runtime", default="python", choices=RUNTIMES, help='Runtime of the handler code (default "python").')
    add("--export-path", default=None, help="Directory to write to (default: the current directory).")
    add("--archive-format", default="default", choices=list(ARCHIVE_FORMATS), help=FORMAT_HELP)
    add("-f", "--force", action="store_true", help="Overwrite an existing output with the same name.")
    add("-v", "--version", required=True, help="Model version.")
    add("-r", "--requirements-file", help="requirements.txt with the model's Python dependencies.")
    add("-c", "--config-file", help="model-config.yaml (batchSize, minWorkers, ...).")
    return parser


def options_from_args(args: argparse.Namespace) -> ArchiveOptions:
    return ArchiveOptions(
        model_name=args.model_name,
        version=args.version,
        handler=args.handler,
        serialized_file=args.serialized_file,
        model_file=args.model_file,
        extra_files=args.extra_files,
        runtime=args.runtime,
        requirements_file=args.requirements_file,
        config_file=args.config_file,
        archive_format=args.archive_format,
        export_path=args.export_path or os.getcwd(),
        force=args.force,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 on success; 1 with ``ERROR - <message>`` on stderr, as the real tool logs it."""
    options = options_from_args(build_parser().parse_args(argv))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s - %(message)s"))
    logger.addHandler(handler)
    try:
        create_archive(options)
    except (ArchiverError, OSError) as err:
        logger.error("%s", err)
        return 1
    finally:
        logger.removeHandler(handler)
    return 0
