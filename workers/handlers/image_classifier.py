"""``ImageClassifier``: TorchServe's default image classifier (``ts/torch_handler/image_classifier.py``).

Per image it answers ``{label: probability}`` for the ``topk`` (5) most probable classes, labels from
``index_to_name.json`` (else the class index as a string).
"""

from __future__ import annotations

import torch

from . import image_ops
from .timing import timed
from .ts_util import map_class_to_label
from .vision import VisionHandler


class ImageClassifier(VisionHandler):
    """RGB -> Resize 256 -> CenterCrop 224 -> ImageNet normalisation, softmax, top-k labels."""

    topk = 5
    image_processing = image_ops.imagenet_classification_pipeline()

    def set_max_result_classes(self, topk: int) -> None:
        self.topk = topk

    def get_max_result_classes(self) -> int:
        return self.topk

    @timed
    def postprocess(self, data: torch.Tensor) -> list[dict[str, float]]:
        """Top-k softmax per row; a model with fewer classes than ``topk`` returns them all (TorchServe fails)."""
        probabilities = torch.softmax(data, dim=1)
        probs, classes = torch.topk(probabilities, min(self.topk, probabilities.shape[1]), dim=1)
        return map_class_to_label(probs.tolist(), self.mapping, classes.tolist())
