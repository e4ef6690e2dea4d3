"""``ObjectDetector``: TorchServe's default detection handler (``ts/torch_handler/object_detector.py``).

For torchvision-style detection models, which take a batch of C x H x W images in [0, 1] and return
per image ``{"boxes", "labels", "scores"}``. Per image the answer is a list of
``{label: [x1, y1, x2, y2], "score": s}`` for the detections scoring at least ``threshold`` (0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import image_ops
from .ts_util import map_class_to_label
from .vision import VisionHandler


class ObjectDetector(VisionHandler):
    """No resizing (detection models do their own); boxes are in the input image's pixel coordinates."""

    image_processing = image_ops.Compose([image_ops.ConvertRGB(), image_ops.ToTensor()])
    threshold = 0.5

    def postprocess(self, data: list[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        return [self._detections(row) for row in data]

    def _detections(self, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        keep = row["scores"] >= self.threshold
        boxes, labels, scores = (row[key][keep].tolist() for key in ("boxes", "labels", "scores"))
        detections = []
        for box, label, score in zip(boxes, labels, scores, strict=True):
            detection = map_class_to_label([[box]], self.mapping, [[label]])[0]
            detection["score"] = score
            detections.append(detection)
        return detections
