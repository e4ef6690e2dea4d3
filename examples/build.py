"""Build the example models: train each one with fixed seeds, then package it with our ``model-archiver``.

    python -m examples [--out DIR] [--work DIR]

``--out`` receives ``digits.mar`` and ``text.mar`` (default ``examples/model_store``, the store
``config.properties`` serves); ``--work`` receives the trained files the archives are made from
(default ``examples/build``). Training runs on one intra-op thread, so the weights are the same bytes
on every machine, whatever its core count.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from modelserver.model_archiver.cli import main as model_archiver

from .digits import train as digits
from .text import train as text

EXAMPLES_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = EXAMPLES_DIR / "model_store"
DEFAULT_WORK = EXAMPLES_DIR / "build"
VERSION = "1.0"


@dataclass(frozen=True)
class Example:
    """An example model: its directory under ``examples/`` holds ``model.py`` and ``model-config.yaml``."""

    name: str
    handler: str
    """``--handler``: a handler file of the example, or a built-in handler name."""
    train: Callable[[Path], float]
    """Writes the trained files into the given directory and returns the held-out accuracy."""
    serialized_file: str
    extra_files: tuple[str, ...]

    @property
    def source(self) -> Path:
        return EXAMPLES_DIR / self.name


@dataclass(frozen=True)
class Built:
    name: str
    archive: Path
    accuracy: float
    seconds: float


EXAMPLES = (
    Example(
        name="digits",
        handler=str(EXAMPLES_DIR / "digits" / "digits_handler.py"),
        train=digits.train,
        serialized_file=digits.WEIGHTS_FILE,
        extra_files=(digits.LABELS_FILE,),
    ),
    Example(
        name="text",
        handler="text_classifier",
        train=text.train,
        serialized_file=text.WEIGHTS_FILE,
        extra_files=(text.VOCAB_FILE, text.LABELS_FILE),
    ),
)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One intra-op thread while training: float sums are then added up in the same order everywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def archiver_args(example: Example, files: Path, out: Path) -> list[str]:
    """``model-archiver`` flags, exactly as on the command line (torch-model-archiver's)."""
    return [
        "--model-name",
        example.name,
        "--version",
        VERSION,
        "--model-file",
        str(example.source / "model.py"),
        "--serialized-file",
        str(files / example.serialized_file),
        "--handler",
        example.handler,
        "--extra-files",
        ",".join(str(files / name) for name in example.extra_files),
        "--config-file",
        str(example.source / "model-config.yaml"),
        "--export-path",
        str(out),
        "--force",
    ]


def build_example(example: Example, out: Path, work: Path) -> Built:
    """Train ``example`` into ``work/<name>`` and write ``out/<name>.mar``."""
    start = time.monotonic()
    files = work / example.name
    with single_threaded():
        accuracy = example.train(files)
    out.mkdir(parents=True, exist_ok=True)
    if model_archiver(archiver_args(example, files, out)) != 0:
        raise RuntimeError(f"model-archiver failed for {example.name}")
    return Built(example.name, out / f"{example.name}.mar", accuracy, time.monotonic() - start)


def build_all(out: Path = DEFAULT_OUT, work: Path = DEFAULT_WORK) -> list[Built]:
    return [build_example(example, out, work) for example in EXAMPLES]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples", description="Train the example models and archive them."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the .mar files go (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="where trained files go (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for example in EXAMPLES:
        try:
            built = build_example(example, args.out, args.work)
        except RuntimeError as err:
            print(f"{example.name}: {err}")
            return 1
        print(f"{built.name}: held-out accuracy {built.accuracy:.2%}, wrote {built.archive} in {built.seconds:.1f} s")
    return 0
