"""``TextClassifier``: TorchServe's default text classifier (``ts/torch_handler/text_classifier.py``).

Each request's text is cleaned (HTML, lower case, contractions, accents, punctuation), tokenised
(``basic_english``), expanded with bigrams (``ngrams = 2``) and looked up in the vocabulary. The model is
called EmbeddingBag-style as ``model(token_ids, offsets)``; per request the answer is the softmax over
all classes as ``{label: probability}``. TorchServe handles only the first request of a batch; here
every request is one bag of the same call, so batches work.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from . import text_ops
from .text import TextHandler, legacy_softmax_dim
from .ts_util import map_class_to_label


class TextClassifier(TextHandler):
    """``preprocess`` returns ``(token_ids, tokens)`` as TorchServe's; bag boundaries are kept in ``offsets``."""

    ngrams = 2

    def __init__(self) -> None:
        super().__init__()
        self.offsets: torch.Tensor | None = None
        self.batch_tokens: list[list[str]] = []

    def preprocess(self, data: list[Any]) -> tuple[torch.Tensor, list[str]]:
        self.batch_tokens = [self._clean_tokens(row) for row in data]
        ids = [text_ops.token_ids(self.source_vocab, text_ops.ngrams(t, self.ngrams)) for t in self.batch_tokens]
        starts = [0, *itertools.accumulate(len(row) for row in ids)][:-1]
        self.offsets = torch.as_tensor(starts, dtype=torch.long, device=self.device)
        text_tensor = torch.as_tensor(list(itertools.chain.from_iterable(ids)), dtype=torch.long, device=self.device)
        return text_tensor, list(itertools.chain.from_iterable(self.batch_tokens))

    def _clean_tokens(self, row: Any) -> list[str]:
        text = (row.get("data") or row.get("body")) if isinstance(row, dict) else row
        if isinstance(text, bytes | bytearray):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise TypeError(f"text_classifier expects text input, got {type(text).__name__}")
        text = self._remove_html_tags(text).lower()
        text = self._remove_accented_characters(self._expand_contractions(text))
        return self._tokenize(self._remove_punctuation(text))

    def inference(self, data: tuple[torch.Tensor, Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        text_tensor, _ = data
        return super().inference(text_tensor, self._bag_offsets(), *args, **kwargs)

    def _bag_offsets(self) -> torch.Tensor:
        """Our preprocess's bag starts; a single bag for a subclass preprocess that returns one request."""
        if self.offsets is None:
            return torch.as_tensor([0], device=self.device)
        return self.offsets

    def postprocess(self, data: torch.Tensor) -> list[dict[str, float]]:
        probabilities = torch.softmax(data, dim=legacy_softmax_dim(data.dim()))
        return map_class_to_label(probabilities.tolist(), self.mapping)

    def get_insights(self, text_preprocess: Any, _raw_input: Any, target: Any = 0) -> list[dict[str, Any]]:
        """Per request ``{"importances": [...], "words": [...]}`` from Layer Integrated Gradients on the embedding."""
        text_tensor, tokens = text_preprocess
        bounds = [*self._bag_offsets().tolist(), len(text_tensor)]
        words = self.batch_tokens if len(self.batch_tokens) == len(bounds) - 1 else [tokens]
        return [
            self._token_importances(text_tensor[start:end], request_words, target)
            for start, end, request_words in zip(bounds, bounds[1:], words, strict=False)
        ]

    def _token_importances(self, token_ids: torch.Tensor, words: list[str], target: Any) -> dict[str, Any]:
        offsets = torch.as_tensor([0], device=self.device)
        attributions = self.lig.attribute(
            token_ids,
            torch.zeros_like(token_ids),  # captum's TokenReferenceBase with reference token 0
            additional_forward_args=(offsets,),
            return_convergence_delta=False,
            target=target,
        )
        importances = self.summarize_attributions(attributions)
        return {"importances": importances.tolist(), "words": self.get_word_token(words)}
