"""Text clean-up, tokenisation, n-grams and vocabularies for the text handlers, without torchtext.

The tokenizer reproduces torchtext's ``basic_english`` (lower-case, split off ``' . , ( ) ! ?``, drop
``"``, ``;`` and ``:``, split on whitespace) and :func:`ngrams` reproduces ``ngrams_iterator`` (all
tokens, then the bigrams, trigrams... joined by a space), so vocabulary lookups match models trained
with torchtext.

A vocabulary (``source_vocab.pt``) is anything with ``vocab[token]`` that ``torch.load`` can read: the
portable form is a plain ``dict[str, int]`` saved with ``torch.save`` (unknown tokens map to the id of
``"<unk>"``, else 0); a pickled torchtext ``Vocab`` also works when torchtext is installed.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

CLEANUP_REGEX = re.compile(r"<[^>\n]*>|&(?:[a-z0-9]+|#[0-9]{1,6}|#x[0-9a-f]{1,6});")
"""HTML tags and character entities."""

_BASIC_ENGLISH_RULES = [
    (re.compile(r"'"), " '  "),
    (re.compile(r'"'), ""),
    (re.compile(r"\."), " . "),
    (re.compile(r"<br \/>"), " "),
    (re.compile(r","), " , "),
    (re.compile(r"\("), " ( "),
    (re.compile(r"\)"), " ) "),
    (re.compile(r"!"), " ! "),
    (re.compile(r"\?"), " ? "),
    (re.compile(r";"), " "),
    (re.compile(r":"), " "),
    (re.compile(r"\s+"), " "),
]


def basic_english(line: str) -> list[str]:
    """torchtext's ``get_tokenizer("basic_english")``."""
    line = line.lower()
    for pattern, replacement in _BASIC_ENGLISH_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def ngrams(tokens: Sequence[str], n: int) -> Iterator[str]:
    """torchtext's ``ngrams_iterator``: the tokens, then every 2..n-gram in order, words joined by a space."""
    yield from tokens
    for size in range(2, n + 1):
        for start in range(len(tokens) - size + 1):
            yield " ".join(tokens[start : start + size])


# -- contractions -----------------------------------------------------------------------------------


def _contraction_map() -> dict[str, str]:
    """English contractions and their expansions: regular suffix rules, their ``'ve`` forms, the irregular ones.

    Keys are lower case; :func:`expand_contractions` matches case-insensitively and keeps the first letter.
    """
    rules = {
        "'d": ("would", "he i it she that there they we you y'all"),
        "'ll": ("will", "he how i it she they we what who you"),
        "'s": ("is", "he how it she that there what when where who why"),
        "'re": ("are", "they we what you y'all"),
        "'ve": ("have", "could i might must should so they to we what when where who why will would you y'all"),
        "n't": ("not", "are could did does do had has have is may might must need ought should was were would"),
    }
    table = {}
    for suffix, (expansion, words) in rules.items():
        table.update({word + suffix: f"{_spelled_out(word)} {expansion}" for word in words.split()})
    table.update({key + "'ve": value + " have" for key, value in list(table.items()) if key.endswith(_HAVE_AFTER)})
    table.update(_IRREGULAR)
    return table


_HAVE_AFTER = ("'d", "'ll", "n't")
"""Contractions that take a further ``'ve``: ``would've``-style doubles such as ``couldn't've``."""


def _spelled_out(word: str) -> str:
    return "you all" if word == "y'all" else word


_IRREGULAR = {
    "ain't": "is not",
    "can't": "cannot",
    "can't've": "cannot have",
    "shan't": "shall not",
    "sha'n't": "shall not",
    "shan't've": "shall not have",
    "won't": "will not",
    "won't've": "will not have",
    "how'd": "how did",
    "where'd": "where did",
    "how'd'y": "how do you",
    "i'm": "i am",
    "let's": "let us",
    "so's": "so as",
    "y'all": "you all",
    "'cause": "because",
    "ma'am": "madam",
    "o'clock": "of the clock",
}

CONTRACTION_MAP = _contraction_map()
CONTRACTIONS_PATTERN = re.compile(
    "|".join(re.escape(key) for key in sorted(CONTRACTION_MAP, key=len, reverse=True)), flags=re.IGNORECASE
)
"""Longest first, so ``can't've`` is one contraction rather than ``can't`` followed by ``'ve``."""


def expand_contractions(text: str) -> str:
    """``don't`` -> ``do not`` (keeping the first letter's case), then drop any apostrophe left."""
    text = CONTRACTIONS_PATTERN.sub(_expand_match, text)
    return text.replace("'", "")


def _expand_match(match: re.Match[str]) -> str:
    found = match.group(0)
    expansion = CONTRACTION_MAP.get(found) or CONTRACTION_MAP[found.lower()]
    return found[0] + expansion[1:]


def remove_accents(text: str) -> str:
    """``café`` -> ``cafe``: decompose, then drop what is not ASCII."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("utf-8", "ignore")


def remove_html_tags(text: str) -> str:
    return CLEANUP_REGEX.sub("", text)


def remove_punctuation(text: str) -> str:
    return text.translate(str.maketrans("", "", string.punctuation))


# -- vocabularies -----------------------------------------------------------------------------------


def load_vocab(path: str) -> Any:
    """``torch.load`` a vocabulary: tensors-only first (a dict loads so), then a full unpickle for old formats.

    The vocabulary ships in the model archive next to the handler code, so unpickling it trusts nothing
    the handler itself is not already trusted with.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        logger.warning("%s is not a plain dict vocabulary; unpickling it (needs the library that saved it)", path)
        return torch.load(path, map_location="cpu", weights_only=False)


def token_ids(vocab: Any, tokens: Iterator[str] | Sequence[str]) -> list[int]:
    """Ids of ``tokens``; a dict vocabulary maps unknown tokens to ``"<unk>"``'s id (else 0)."""
    if isinstance(vocab, Mapping):
        unknown = vocab.get("<unk>", 0)
        return [int(vocab.get(token, unknown)) for token in tokens]
    return [int(vocab[token]) for token in tokens]
