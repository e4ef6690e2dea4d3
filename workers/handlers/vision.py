"""``VisionHandler``: TorchServe's base for image handlers (``ts/torch_handler/vision_handler.py``).

A request's image arrives as ``data`` or ``body``: raw bytes (any format Pillow decodes), a base64
string, or a nested list that already is the C x H x W tensor (then ``image_processing`` is skipped).
Pillow is required (checked at load time); captum only when explanations are asked for.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import torch

from . import explain, image_ops
from .base import BaseHandler
from .timing import timed


class VisionHandler(BaseHandler):
    """Decodes images, runs ``image_processing`` on each and stacks them into one batch tensor."""

    image_processing: Callable[[Any], Any] = image_ops.Compose([image_ops.ToTensor()])
    """Subclasses replace this (TorchServe's ``VisionHandler`` leaves it to them); the default only converts."""

    def initialize(self, context: Any) -> None:
        image_ops.pil_image()  # fail the load, not every request, when Pillow is missing
        super().initialize(context)
        self.initialized = True
        if not context.system_properties.get("limit_max_image_pixels"):
            image_ops.unlimit_image_pixels()

    @property
    def ig(self) -> Any:
        """Captum ``IntegratedGradients`` over the model, built on first use (TorchServe builds it at load)."""
        if getattr(self, "_ig", None) is None:
            self._ig = explain.integrated_gradients(self.model)
        return self._ig

    @ig.setter
    def ig(self, value: Any) -> None:
        self._ig = value

    @timed
    def preprocess(self, data: list[Any]) -> torch.Tensor:
        images = [self._image_tensor(row) for row in data]
        return torch.stack(images).to(self.device)

    def _image_tensor(self, row: dict[str, Any]) -> torch.Tensor:
        image = row.get("data") or row.get("body")
        if isinstance(image, str):
            image = base64.b64decode(image)
        if isinstance(image, bytes | bytearray):
            return self.image_processing(image_ops.open_image(image))
        return torch.FloatTensor(image)

    def get_insights(self, tensor_data: Any, _raw_input: Any, target: Any = 0) -> list[Any]:
        """One C x H x W attribution list per image, for class ``target`` (TorchServe's return shape)."""
        return explain.attribute_inputs(self.model, tensor_data, target, ig=self.ig)
