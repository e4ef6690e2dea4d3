"""The digits model: two 3x3 convolutions and a linear layer over an 8x8 greyscale image scaled to 0..1.

The handler's ``BaseHandler`` instantiates the one ``nn.Module`` class of this file without arguments
and loads ``digits_cnn.pt`` (a state dict) into it.
"""

from __future__ import annotations

import torch
from torch import nn

SIDE = 8
NUM_CLASSES = 10


class DigitsCNN(nn.Module):
    """``(N, 1, 8, 8)`` pixels in 0..1 -> ``(N, 10)`` logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * (SIDE // 2) ** 2, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
