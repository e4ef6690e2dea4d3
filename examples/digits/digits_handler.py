"""Handler for the digits CNN, written for TorchServe: one ``BaseHandler`` subclass, ``ts.*`` imports only.

Input per request (the request's ``data`` or ``body``):

- 64 numbers in 0..16 as a JSON list, or an 8x8 nested list (the scikit-learn digits format), sent as
  ``application/json`` or as JSON text;
- an image (PNG, JPEG, ... anything Pillow reads), as raw bytes or a base64 string. It is converted to
  greyscale (transparency over white), inverted when it is dark ink on a light background (the training
  digits are light on dark), shrunk to 8x8 by averaging blocks and scaled to 0..16, which is how the
  dataset itself was made from 32x32 bitmaps.

Anything else answers 400 (``PredictionException``); as in TorchServe, that fails the batch it is in.
Output per request: ``{label: probability}`` of the 3 most likely digits, most likely first.
Explanations (``/explanations/digits``) are ``BaseHandler``'s Integrated Gradients, one 8x8 grid per
input; the class explained is the request's ``target`` field (a digit or its label), default 0.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from typing import Any

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

SIDE = 8
PIXELS = SIDE * SIDE
CLASSES = 10
MAX_VALUE = 16.0
TOP_K = 3
BAD_INPUT = "Expected 64 numbers in 0..16 as a JSON list or an 8x8 nested list, or an image (PNG, JPEG, ...) of a digit"


def request_input(row: Any) -> Any:
    """TorchServe's convention: a request's input is its ``data`` field, else its ``body``."""
    if not isinstance(row, dict):
        return row
    value = row.get("data")
    return row.get("body") if value is None else value


def parse_pixels(value: Any) -> list[float]:
    """The 64 pixel values (0..16) of one request's input, or a 400 ``PredictionException``."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value)
        return grid_values(_json(value)) if _looks_like_json(value) else image_values(value)
    if isinstance(value, str):
        return grid_values(_json(value)) if _looks_like_json(value) else image_values(_b64(value))
    return grid_values(value)


def _looks_like_json(raw: bytes | str) -> bool:
    """A JSON list (what the grid formats are); anything else is taken for an image."""
    first = raw.lstrip()[:1]
    return first in (b"[", "[")


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise PredictionException(BAD_INPUT, 400) from None


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PredictionException(BAD_INPUT, 400) from None


def grid_values(value: Any) -> list[float]:
    """A flat list of 64 numbers, or 8 rows of 8, each a finite number in 0..16."""
    if isinstance(value, list) and len(value) == SIDE and all(isinstance(row, list) for row in value):
        if any(len(row) != SIDE for row in value):
            raise PredictionException(BAD_INPUT, 400)
        value = [pixel for row in value for pixel in row]
    if not isinstance(value, list) or len(value) != PIXELS or not all(_is_pixel(pixel) for pixel in value):
        raise PredictionException(BAD_INPUT, 400)
    return [float(pixel) for pixel in value]


def _is_pixel(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_VALUE
    )


def image_values(raw: bytes) -> list[float]:
    """Decode an image and turn it into the dataset's format: 8x8 block averages of light-on-dark ink, 0..16."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            grey = _greyscale(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise PredictionException(BAD_INPUT, 400) from None
    if _has_light_background(grey):
        grey = ImageOps.invert(grey)
    small = grey.resize((SIDE, SIDE), Image.Resampling.BOX)
    return [value * MAX_VALUE / 255 for value in small.tobytes()]


def _greyscale(image: Image.Image) -> Image.Image:
    """Greyscale ("L"); transparent pixels count as white paper."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(paper, rgba).convert("L")
    return image.convert("L")


def _has_light_background(grey: Image.Image) -> bool:
    """True when the border pixels are mostly light, i.e. dark ink on paper."""
    width, height = grey.size
    pixels = grey.load()
    border = [pixels[x, y] for x in range(width) for y in (0, height - 1)]
    border += [pixels[x, y] for y in range(height) for x in (0, width - 1)]
    return sum(border) / len(border) > 127


class DigitsHandler(BaseHandler):
    """``preprocess``: inputs -> ``(N, 1, 8, 8)`` in 0..1; ``postprocess``: logits -> top-3 ``{label: probability}``."""

    def preprocess(self, data: list[Any]) -> torch.Tensor:
        rows = [parse_pixels(request_input(row)) for row in data]
        batch = torch.tensor(rows, dtype=torch.float32, device=self.device)
        return batch.div(MAX_VALUE).view(-1, 1, SIDE, SIDE)

    def postprocess(self, data: torch.Tensor) -> list[dict[str, float]]:
        probabilities = torch.softmax(data, dim=1)
        top = torch.topk(probabilities, k=min(TOP_K, probabilities.shape[1]), dim=1)
        return [
            {self._label(index): probability for index, probability in zip(indices, values, strict=True)}
            for indices, values in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]

    def get_insights(self, tensor_data: torch.Tensor, raw_input: Any, target: Any = 0) -> list[Any]:
        """Integrated Gradients for ``target`` (a class index or label): one 8x8 grid per input."""
        attributions = super().get_insights(tensor_data, raw_input, self._target_index(target))
        return [channels[0] for channels in attributions]

    def _label(self, index: int) -> str:
        return self.mapping.get(str(index), str(index)) if self.mapping else str(index)

    def _target_index(self, target: Any) -> int:
        """``3``, ``"3"`` or a label such as ``"three"``; anything else is a 400."""
        labels = {self._label(index): index for index in range(CLASSES)}
        if isinstance(target, str) and target in labels:
            return labels[target]
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < CLASSES:
            return target
        raise PredictionException(f"target must be a digit 0..9 or one of {sorted(labels)}, got {target!r}", 400)
