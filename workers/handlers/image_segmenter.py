"""``ImageSegmenter``: TorchServe's default segmentation handler (``ts/torch_handler/image_segmenter.py``).

The model returns N x K x H x W class scores (a tensor, or torchvision's ``{"out": ...}`` dict); per
image the answer is an H x W x 2 list of ``[class, probability]`` of the most probable class, since
all K scores per pixel would make the response too large.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from . import image_ops
from .vision import VisionHandler


class ImageSegmenter(VisionHandler):
    """ImageNet preprocessing as the classifier; per pixel the top class and its softmax probability."""

    image_processing = image_ops.imagenet_classification_pipeline()

    def postprocess(self, data: Any) -> list[Any]:
        scores = data["out"] if isinstance(data, Mapping) else data
        best = torch.max(torch.softmax(scores, dim=1), dim=1)
        return torch.stack([best.indices.to(best.values.dtype), best.values], dim=3).tolist()
