"""Train the digits CNN on scikit-learn's bundled 8x8 digits (no download) with fixed seeds.

The split is stratified and seeded, so the held-out 20 % is the same everywhere; the tests send
those samples to the server. Pixel values are 0..16 (on pixels counted in 4x4 blocks of a 32x32
bitmap) and are scaled to 0..1 for the model, as the handler does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from .model import NUM_CLASSES, SIDE, DigitsCNN

WEIGHTS_FILE = "digits_cnn.pt"
LABELS_FILE = "index_to_name.json"
SAMPLE_FILE = "sample.png"
SAMPLE_SCALE = 4
LABELS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_PIXEL = 16.0
SEED = 0
EPOCHS = 12
BATCH_SIZE = 32
LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class Split:
    """Raw pixels (``(n, 64)``, 0..16) and digit labels of the training and held-out parts."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_split() -> Split:
    """The deterministic 80/20 stratified split of the 1797 digits."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return Split(x_train, x_test, y_train, y_test)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``(n, 64)`` pixels in 0..16 -> ``(n, 1, 8, 8)`` float32 in 0..1."""
    return torch.as_tensor(pixels, dtype=torch.float32).div(MAX_PIXEL).view(-1, 1, SIDE, SIDE)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Adam on shuffled mini-batches; the shuffle has its own seeded generator."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(x), generator=generator).split(BATCH_SIZE):
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def write_png(pixels: np.ndarray, destination: Path | BinaryIO, dark_on_light: bool = True) -> None:
    """Draw 64 pixel values (0..16) as a 32x32 greyscale PNG, each pixel a 4x4 block: a digit to send the server."""
    grey = (np.asarray(pixels, dtype=np.float64).reshape(SIDE, SIDE) * 255 / MAX_PIXEL).round().astype(np.uint8)
    image = Image.fromarray(255 - grey if dark_on_light else grey)
    image.resize((SIDE * SAMPLE_SCALE, SIDE * SAMPLE_SCALE), Image.Resampling.NEAREST).save(destination, format="PNG")


def train(work: Path) -> float:
    """Train; write ``digits_cnn.pt``, ``index_to_name.json`` and ``sample.png`` (the first held-out digit, drawn
    dark on white) into ``work``; return the held-out accuracy."""
    split = load_split()
    torch.manual_seed(SEED)
    model = DigitsCNN()
    fit(model, to_tensor(split.x_train), torch.as_tensor(split.y_train))
    work.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), work / WEIGHTS_FILE)
    (work / LABELS_FILE).write_text(json.dumps({str(i): name for i, name in enumerate(LABELS[:NUM_CLASSES])}) + "\n")
    write_png(split.x_test[0], work / SAMPLE_FILE)
    return accuracy(model, to_tensor(split.x_test), torch.as_tensor(split.y_test))
