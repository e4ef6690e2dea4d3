"""The text model: TorchServe's ``TextSentiment`` shape, an ``EmbeddingBag`` (mean of the token vectors) and a
linear layer, called as ``model(token_ids, offsets)`` by the built-in ``text_classifier`` handler.

The handler instantiates this class without arguments, so the embedding table has a fixed capacity;
the vocabulary (``source_vocab.pt``) must fit in it, which training checks. ``embedding`` is the layer
the handler's Layer Integrated Gradients explain.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB_CAPACITY = 2048
EMBED_DIM = 32
NUM_CLASSES = 2


class TextSentiment(nn.Module):
    """Token ids of all bags concatenated, and each bag's start offset -> ``(bags, 2)`` logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(VOCAB_CAPACITY, EMBED_DIM, mode="mean")
        self.fc = nn.Linear(EMBED_DIM, NUM_CLASSES)

    def forward(self, text: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(text, offsets))
