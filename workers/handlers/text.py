"""``TextHandler``: TorchServe's base for text handlers (``ts/torch_handler/text_handler.py``), without torchtext.

It loads the vocabulary (``source_vocab.pt`` in the model directory, or the manifest's legacy
``sourceVocab``) and offers TorchServe's text clean-up helpers. See :mod:`workers.handlers.text_ops` for
the vocabulary formats (a plain ``dict[str, int]`` saved with ``torch.save`` needs no torchtext).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from . import explain, text_ops
from .base import BaseHandler

logger = logging.getLogger(__name__)

CLEANUP_REGEX = text_ops.CLEANUP_REGEX
CONTRACTIONS_PATTERN = text_ops.CONTRACTIONS_PATTERN
MISSING_VOCAB = "Missing the source_vocab file. Refer default handler documentation for details on using text_handler."


def legacy_softmax_dim(ndim: int) -> int:
    """The dimension ``F.softmax(x)`` picks when none is given (TorchServe's text handlers rely on it)."""
    return 0 if ndim in (0, 1, 3) else 1


class TextHandler(BaseHandler):
    """Vocabulary loading plus the clean-up steps (HTML, contractions, accents, punctuation) and tokenizer."""

    def __init__(self) -> None:
        super().__init__()
        self.source_vocab: Any = None
        self.tokenizer = text_ops.basic_english
        self.input_text: Any = None
        self._lig: Any = None

    def initialize(self, context: Any) -> None:
        super().initialize(context)
        self.initialized = False
        self.source_vocab = text_ops.load_vocab(self._source_vocab_file(context))
        self.initialized = True

    def _source_vocab_file(self, context: Any) -> str:
        legacy = self._model_manifest().get("sourceVocab")
        if legacy:
            return os.path.join(context.system_properties.get("model_dir") or "", legacy)
        return self.get_source_vocab_path(context)

    def get_source_vocab_path(self, ctx: Any) -> str:
        path = os.path.join(ctx.system_properties.get("model_dir") or "", "source_vocab.pt")
        if not os.path.isfile(path):
            raise Exception(MISSING_VOCAB)
        return path

    @property
    def lig(self) -> Any:
        """Captum ``LayerIntegratedGradients`` on ``model.embedding``, built on first use."""
        if self._lig is None:
            self._lig = explain.layer_integrated_gradients(self.model, self.model.embedding)
        return self._lig

    @lig.setter
    def lig(self, value: Any) -> None:
        self._lig = value

    def _expand_contractions(self, text: str) -> str:
        return text_ops.expand_contractions(text)

    def _remove_accented_characters(self, text: str) -> str:
        return text_ops.remove_accents(text)

    def _remove_html_tags(self, text: str) -> str:
        return text_ops.remove_html_tags(text)

    def _remove_punctuation(self, text: str) -> str:
        return text_ops.remove_punctuation(text)

    def _remove_puncutation(self, *args: Any, **kwargs: Any) -> str:
        """TorchServe's original misspelling, kept for handlers that call it."""
        return self._remove_punctuation(*args, **kwargs)

    def _tokenize(self, text: str) -> list[str]:
        return self.tokenizer(text)

    def get_word_token(self, input_tokens: list[str]) -> list[str]:
        """Tokens for display: BPE tokenizers mark a leading space with ``Ġ``."""
        return [token.replace("Ġ", "") for token in input_tokens]

    def summarize_attributions(self, attributions: torch.Tensor) -> torch.Tensor:
        """Softmax the attributions and scale them by the norm of their per-position sums (TorchServe's)."""
        attributions = torch.softmax(attributions, dim=legacy_softmax_dim(attributions.dim()))
        return attributions / torch.norm(attributions.sum(dim=-1))
