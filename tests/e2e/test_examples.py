"""The example models end to end: ``python -m examples`` trains them and builds ``digits.mar`` and ``text.mar``
with our model-archiver; the real server loads those archives from its model store and answers over HTTP."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from examples.build import single_threaded
from examples.digits import train as digits
from examples.text import corpus
from examples.text import train as text
from tests.server import ROOT, RunningServer, start_server

pytestmark = pytest.mark.e2e

MODELS = ("digits", "text")
BAD_DIGITS_INPUT = (
    "Expected 64 numbers in 0..16 as a JSON list or an 8x8 nested list, or an image (PNG, JPEG, ...) of a digit"
)


@dataclass(frozen=True)
class Build:
    store: Path
    work: Path
    output: str


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """``python -m examples --out <tmp>/model_store``: the model store the server below starts on."""
    tmp = tmp_path_factory.mktemp("examples")
    store, work = tmp / "model_store", tmp / "work"
    command = [sys.executable, "-m", "examples", "--out", str(store), "--work", str(work)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return Build(store, work, result.stdout)


@pytest.fixture(scope="module")
def server(build: Build) -> Iterator[RunningServer]:
    running = start_server(
        build.store.parent,
        {},
        properties={"model_store": str(build.store), "load_models": "all"},
        wait_models=MODELS,
    )
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def split() -> digits.Split:
    return digits.load_split()


def post(server: RunningServer, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(f"{server.inference}/{path}", timeout=30, **kwargs)


def top_label(prediction: dict[str, float]) -> str:
    return max(prediction, key=prediction.__getitem__)


def png_bytes(pixels: np.ndarray, dark_on_light: bool) -> bytes:
    buffer = io.BytesIO()
    digits.write_png(pixels, buffer, dark_on_light=dark_on_light)
    return buffer.getvalue()


# -- the build -------------------------------------------------------------------------------------


def test_build_prints_held_out_accuracy(build: Build) -> None:
    accuracies = dict(re.findall(r"^(\w+): held-out accuracy ([\d.]+)%", build.output, re.MULTILINE))
    assert set(accuracies) == set(MODELS)
    assert all(float(value) > 90 for value in accuracies.values()), build.output


@pytest.mark.parametrize(
    ("name", "handler", "entries"),
    [
        ("digits", "digits_handler.py", {"digits_cnn.pt", "digits_handler.py", "index_to_name.json", "model.py"}),
        ("text", "text_classifier", {"text_classifier.pt", "source_vocab.pt", "index_to_name.json", "model.py"}),
    ],
)
def test_archives_made_by_model_archiver(build: Build, name: str, handler: str, entries: set[str]) -> None:
    with zipfile.ZipFile(build.store / f"{name}.mar") as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
    assert names == entries | {"model-config.yaml", "MAR-INF/MANIFEST.json"}
    assert manifest["model"]["modelName"] == name
    assert manifest["model"]["handler"] == handler
    assert manifest["model"]["modelFile"] == "model.py"
    assert manifest["model"]["configFile"] == "model-config.yaml"


def test_training_is_reproducible(build: Build, tmp_path: Path) -> None:
    """Training again gives byte-identical weights and vocabulary."""
    with single_threaded():
        digits.train(tmp_path / "digits")
        text.train(tmp_path / "text")
    for produced in (
        "digits/digits_cnn.pt",
        "digits/index_to_name.json",
        "text/text_classifier.pt",
        "text/source_vocab.pt",
    ):
        assert (tmp_path / produced).read_bytes() == (build.work / produced).read_bytes(), produced


# -- digits ----------------------------------------------------------------------------------------


def test_digits_held_out_accuracy(server: RunningServer, split: digits.Split) -> None:
    """Every held-out digit, as a flat list of 64 or an 8x8 grid, 8 requests at a time (the batch size)."""

    def predict(index: int) -> str:
        pixels = split.x_test[index]
        body = pixels.tolist() if index % 2 else pixels.reshape(8, 8).tolist()
        response = post(server, "predictions/digits", json=body)
        assert response.status_code == 200, response.text
        prediction = response.json()
        assert len(prediction) == 3
        assert list(prediction.values()) == sorted(prediction.values(), reverse=True)
        return top_label(prediction)

    with ThreadPoolExecutor(8) as pool:
        labels = list(pool.map(predict, range(len(split.x_test))))
    correct = sum(label == digits.LABELS[truth] for label, truth in zip(labels, split.y_test, strict=True))
    assert correct / len(labels) > 0.9


@pytest.mark.parametrize("dark_on_light", [False, True], ids=["light-on-dark", "dark-on-light"])
def test_digits_png_matches_json(server: RunningServer, split: digits.Split, dark_on_light: bool) -> None:
    for index in range(5):
        as_json = post(server, "predictions/digits", json=split.x_test[index].tolist()).json()
        png = png_bytes(split.x_test[index], dark_on_light)
        as_png = post(server, "predictions/digits", data=png, headers={"Content-Type": "image/png"})
        assert as_png.status_code == 200, as_png.text
        assert top_label(as_png.json()) == top_label(as_json) == digits.LABELS[split.y_test[index]]


def test_digits_png_as_multipart_file(server: RunningServer, split: digits.Split) -> None:
    response = post(server, "predictions/digits", files={"data": ("digit.png", png_bytes(split.x_test[0], True))})
    assert response.status_code == 200, response.text
    assert top_label(response.json()) == digits.LABELS[split.y_test[0]]


def assert_grid(attributions: Any) -> None:
    assert len(attributions) == 8
    assert all(len(row) == 8 and all(isinstance(value, float) for value in row) for row in attributions)
    assert any(value != 0 for row in attributions for value in row)


def test_digits_explanations_are_8x8(server: RunningServer, split: digits.Split) -> None:
    response = post(server, "explanations/digits", json=split.x_test[0].reshape(8, 8).tolist())
    assert response.status_code == 200, response.text
    assert_grid(response.json())


@pytest.mark.parametrize("target", ["7", "seven"])
def test_digits_explanation_of_a_target_class(server: RunningServer, split: digits.Split, target: str) -> None:
    """Multipart: the image as ``data``, the class to explain as ``target`` (an index or a label)."""
    files = {"data": ("digit.png", png_bytes(split.x_test[0], True), "image/png"), "target": (None, target)}
    explained = post(server, "explanations/digits", files=files)
    assert explained.status_code == 200, explained.text
    assert_grid(explained.json())
    other = post(server, "explanations/digits", files={**files, "target": (None, "0")}).json()
    assert other != explained.json()


def test_digits_explanation_bad_target(server: RunningServer, split: digits.Split) -> None:
    files = {"data": (None, json.dumps(split.x_test[0].tolist())), "target": (None, "ten")}
    response = post(server, "explanations/digits", files=files)
    assert response.status_code == 400
    assert response.json()["message"].startswith("target must be a digit 0..9")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[1, 2, 3]", "application/json"),
        (json.dumps([17] * 64).encode(), "application/json"),
        (json.dumps([[0] * 8] * 7).encode(), "application/json"),
        (json.dumps([[0] * 7] * 8).encode(), "application/json"),
        (json.dumps(["1"] * 64).encode(), "application/json"),
        (b"[1, 2,", "text/plain"),
        (b"\x89PNG\r\n\x1a\n not really a png", "image/png"),
        (b"hello", "text/plain"),
    ],
    ids=["too-few", "out-of-range", "7-rows", "7-columns", "strings", "broken-json", "broken-png", "text"],
)
def test_digits_bad_input_is_400(server: RunningServer, body: bytes, content_type: str) -> None:
    response = post(server, "predictions/digits", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "type": "InternalServerException", "message": BAD_DIGITS_INPUT}


# -- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "sentiment"),
    [
        ("I loved this movie, the acting was wonderful!", "positive"),
        ("Highly recommended: a brilliant, touching story.", "positive"),
        ("What a boring film. A waste of time.", "negative"),
        ("I hated the plot, it was <b>awful</b>.", "negative"),
        ("The ending wasn't good at all.", "negative"),
    ],
)
def test_text_sentiment(server: RunningServer, sentence: str, sentiment: str) -> None:
    response = post(server, "predictions/text", data=sentence.encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    prediction = response.json()
    assert set(prediction) == {"negative", "positive"}
    assert sum(prediction.values()) == pytest.approx(1.0, abs=1e-5)
    assert top_label(prediction) == sentiment
    assert prediction[sentiment] > 0.9


def test_text_held_out_accuracy(server: RunningServer) -> None:
    held_out = text.load_split()

    def predict(sentence: str) -> str:
        return top_label(post(server, "predictions/text", data=sentence.encode()).json())

    with ThreadPoolExecutor(8) as pool:
        labels = list(pool.map(predict, held_out.x_test))
    expected = [corpus.LABELS[label] for label in held_out.y_test]
    assert sum(a == b for a, b in zip(labels, expected, strict=True)) / len(expected) > 0.9


def test_text_explanation(server: RunningServer) -> None:
    response = post(server, "explanations/text", data=b"a wonderful film", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    explanation = response.json()
    assert explanation["words"] == ["a", "wonderful", "film"]
    assert explanation["importances"]
