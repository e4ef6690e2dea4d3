"""Train the sentiment classifier on the generated corpus with fixed seeds.

Texts are cleaned, tokenised and expanded with bigrams by the very functions the built-in
``text_classifier`` handler uses (``workers.handlers.text_ops``), so training and serving see the same
tokens. The vocabulary is a plain ``dict[str, int]`` of the training split's unigrams and bigrams, with
``"<unk>"`` at id 0 for everything else, saved with ``torch.save`` as ``source_vocab.pt``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from sklearn.model_selection import train_test_split
from torch import nn

from workers.handlers import text_ops

from . import corpus
from .model import VOCAB_CAPACITY, TextSentiment

WEIGHTS_FILE = "text_classifier.pt"
VOCAB_FILE = "source_vocab.pt"
LABELS_FILE = "index_to_name.json"
UNKNOWN = "<unk>"
NGRAMS = 2
SEED = 0
EPOCHS = 15
BATCH_SIZE = 16
LEARNING_RATE = 0.02

Vocab = dict[str, int]


@dataclass(frozen=True)
class Split:
    """Texts and labels of the training and held-out parts of the generated corpus."""

    x_train: list[str]
    x_test: list[str]
    y_train: list[int]
    y_test: list[int]


def load_split() -> Split:
    """The deterministic 80/20 stratified split of the generated corpus."""
    texts, labels = corpus.generate(seed=SEED)
    x_train, x_test, y_train, y_test = train_test_split(texts, labels, test_size=0.2, random_state=0, stratify=labels)
    return Split(x_train, x_test, y_train, y_test)


def tokens(text: str) -> list[str]:
    """The handler's pipeline: HTML, lower case, contractions, accents, punctuation, ``basic_english``, bigrams."""
    text = text_ops.remove_html_tags(text).lower()
    text = text_ops.remove_accents(text_ops.expand_contractions(text))
    return list(text_ops.ngrams(text_ops.basic_english(text_ops.remove_punctuation(text)), NGRAMS))


def build_vocab(texts: Iterable[str]) -> Vocab:
    """``"<unk>"`` -> 0, then every token in order of first appearance."""
    vocab: Vocab = {UNKNOWN: 0}
    for token in itertools.chain.from_iterable(tokens(text) for text in texts):
        vocab.setdefault(token, len(vocab))
    if len(vocab) > VOCAB_CAPACITY:
        raise ValueError(f"vocabulary of {len(vocab)} tokens exceeds the model's capacity {VOCAB_CAPACITY}")
    return vocab


def encode(vocab: Vocab, texts: Sequence[str]) -> list[list[int]]:
    """Each text's token ids (unknown tokens and bigrams are ``"<unk>"``)."""
    return [text_ops.token_ids(vocab, tokens(text)) for text in texts]


def bags(ids: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs for a batch: all token ids concatenated, and each text's start offset."""
    offsets = [0, *itertools.accumulate(len(row) for row in ids)][:-1]
    return torch.as_tensor(list(itertools.chain.from_iterable(ids))), torch.as_tensor(offsets)


def fit(model: nn.Module, ids: Sequence[list[int]], labels: Sequence[int]) -> None:
    """Adam on shuffled mini-batches; the shuffle has its own seeded generator."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    targets = torch.as_tensor(labels)
    model.train()
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(ids), generator=generator).split(BATCH_SIZE):
            optimizer.zero_grad()
            loss_fn(model(*bags([ids[i] for i in batch])), targets[batch]).backward()
            optimizer.step()
    model.eval()


def accuracy(model: nn.Module, ids: Sequence[list[int]], labels: Sequence[int]) -> float:
    with torch.inference_mode():
        predicted = model(*bags(ids)).argmax(dim=1)
    return (predicted == torch.as_tensor(labels)).float().mean().item()


def train(work: Path) -> float:
    """Train; write the weights, ``source_vocab.pt`` and ``index_to_name.json`` into ``work``; return accuracy."""
    split = load_split()
    vocab = build_vocab(split.x_train)
    torch.manual_seed(SEED)
    model = TextSentiment()
    fit(model, encode(vocab, split.x_train), split.y_train)
    work.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), work / WEIGHTS_FILE)
    torch.save(vocab, work / VOCAB_FILE)
    (work / LABELS_FILE).write_text(json.dumps(dict(enumerate(corpus.LABELS))) + "\n")
    return accuracy(model, encode(vocab, split.x_test), split.y_test)
