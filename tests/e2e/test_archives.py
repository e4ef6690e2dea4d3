"""Archives made by the real ``torch-model-archiver`` 0.12.0 and by our ``model-archiver``: the same
entries and manifest, and every format served by the real server with a TorchServe-style handler."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

HANDLER = '''"""Written for TorchServe: ts imports, a class handler, files found through the context."""
import json
import os

from ts.utils.util import PredictionException


class LabelHandler:
    def initialize(self, context):
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, "labels.json")) as fh:
            self.labels = json.load(fh)
        with open(os.path.join(model_dir, "nested", "suffix.txt")) as fh:
            self.suffix = fh.read().strip()
        with open(os.path.join(model_dir, "weights.json")) as fh:
            self.weight = json.load(fh)["weight"]

    def handle(self, data, context):
        out = []
        for row in data:
            key = row.get("body") or row.get("data")
            key = key.decode() if isinstance(key, (bytes, bytearray)) else str(key)
            if key not in self.labels:
                raise PredictionException(f"unknown animal {key}", 422)
            out.append({"label": self.labels[key] + self.suffix, "model": context.model_name, "weight": self.weight})
        return out
'''
INPUTS = {
    "handlers/ts_style.py": HANDLER,
    "weights.json": json.dumps({"weight": 0.5}),
    "model-config.yaml": "minWorkers: 1\nmaxWorkers: 1\n",
    "requirements.txt": "# nothing\n",
    "assets/labels.json": json.dumps({"cat": "Felis catus", "dog": "Canis familiaris"}),
    "assets/nested/suffix.txt": "!\n",
    "assets/nested/__pycache__/stale.cpython-311.pyc": "junk",
    "assets/.cache/ignored": "junk",
}
FORMATS = {"default": ".mar", "tgz": ".tar.gz", "no-archive": ""}
PREFIXES = {"default": "mar", "tgz": "tgz", "no-archive": "dir"}


def archiver_args(name: str, fmt: str, export: Path) -> list[str]:
    return [
        "--model-name",
        name,
        "--version",
        "1.0",
        "--handler",
        "handlers/ts_style.py",
        "--serialized-file",
        "weights.json",
        "--extra-files",
        "assets",
        "--requirements-file",
        "requirements.txt",
        "--config-file",
        "model-config.yaml",
        "--archive-format",
        fmt,
        "--export-path",
        str(export),
    ]


def run_archiver(module: str, inputs: Path, args: list[str]) -> None:
    """Run an archiver as a command; TMPDIR keeps the real tool's ``/tmp/<model_name>`` staging private."""
    env = {**os.environ, "TMPDIR": str(inputs.parent)}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=inputs, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def real_archiver(inputs: Path, name: str, fmt: str, export: Path) -> None:
    run_archiver("model_archiver.model_packaging", inputs, archiver_args(name, fmt, export))


def our_archiver(inputs: Path, name: str, fmt: str, export: Path) -> None:
    run_archiver("modelserver.model_archiver", inputs, archiver_args(name, fmt, export))


def contents(path: Path) -> tuple[list[str], dict]:
    """Entry names (manifest excluded) and the manifest without ``createdOn``, whatever the format."""
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        manifest = json.loads((path / "MAR-INF/MANIFEST.json").read_text())
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names, manifest = zf.namelist(), json.loads(zf.read("MAR-INF/MANIFEST.json"))
    else:
        with tarfile.open(path) as tf:
            names = tf.getnames()
            manifest_name = next(n for n in names if n.endswith("MAR-INF/MANIFEST.json"))
            manifest = json.loads(tf.extractfile(manifest_name).read())  # type: ignore[union-attr]
    manifest.pop("createdOn")
    return sorted(n for n in names if not n.endswith("MAR-INF/MANIFEST.json")), manifest


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archives") / "inputs"
    for name, text in INPUTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def server(inputs: Path) -> Iterator[RunningServer]:
    """One model store holding every format from both archivers: ts<fmt> from the real tool, our<fmt> from ours."""
    base = inputs.parent
    store = base / "model_store"
    store.mkdir()
    for fmt, prefix in PREFIXES.items():
        real_archiver(inputs, f"ts{prefix}", fmt, store)
        our_archiver(inputs, f"our{prefix}", fmt, store)
    names = [f"{who}{prefix}" for who in ("ts", "our") for prefix in PREFIXES.values()]
    running = start_server(base, {}, wait_models=names)
    yield running
    running.stop()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_our_archiver_matches_the_real_one(inputs: Path, tmp_path: Path, fmt: str) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "ours").mkdir()
    real_archiver(inputs, "same", fmt, tmp_path / "real")
    our_archiver(inputs, "same", fmt, tmp_path / "ours")
    output = f"same{FORMATS[fmt]}"
    real_names, real_manifest = contents(tmp_path / "real" / output)
    our_names, our_manifest = contents(tmp_path / "ours" / output)
    assert our_names == real_names
    assert our_manifest == real_manifest
    assert "nested/suffix.txt" in [n.removeprefix("same/") for n in real_names]
    assert not any("__pycache__" in n or ".cache" in n for n in real_names)


@pytest.mark.parametrize("model", [f"{who}{p}" for who in ("ts", "our") for p in PREFIXES.values()])
def test_every_archive_answers_predictions(server: RunningServer, model: str) -> None:
    response = requests.post(
        f"{server.inference}/predictions/{model}", data="cat", headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"label": "Felis catus!", "model": model, "weight": 0.5}


def test_ts_prediction_exception_keeps_its_status(server: RunningServer) -> None:
    response = requests.post(
        f"{server.inference}/predictions/tsmar", data="cow", headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert response.status_code == 422
    assert "unknown animal cow" in response.json()["message"]


def test_archives_are_unpacked_into_private_directories(server: RunningServer) -> None:
    workdirs = sorted(server.workdir.glob("modelserver-*"))
    assert len(workdirs) >= 4  # the four archive files; directories are served in place
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in workdirs)
    described = {model: server.describe(model)[0] for model in ("tsmar", "tstgz", "tsdir")}
    assert all(d["modelVersion"] == "1.0" for d in described.values())
