"""A labelled movie-review corpus generated in code: templates filled from word lists by a seeded generator.

Every sentence is built from its sentiment's words, so its label is known; in a negated template
("the plot was not great") the adjective comes from the other sentiment, which the model can only
learn through bigrams ("not great"), as the handler's ``ngrams = 2`` provides.
The same seed gives the same corpus on every machine (``random.Random`` is portable).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

NEGATIVE, POSITIVE = 0, 1
LABELS = ("negative", "positive")

NOUNS = (
    "movie", "film", "story", "plot", "acting", "cast", "ending", "script", "soundtrack",
    "dialogue", "direction", "performance", "cinematography", "sequel", "show",
)  # fmt: skip
ADJECTIVES = {
    POSITIVE: (
        "good", "great", "wonderful", "excellent", "brilliant", "delightful", "enjoyable", "superb",
        "charming", "fantastic", "lovely", "moving", "beautiful", "funny", "amazing", "memorable",
        "gripping", "clever", "touching", "stunning",
    ),
    NEGATIVE: (
        "bad", "terrible", "awful", "boring", "dull", "horrible", "poor", "disappointing", "tedious",
        "dreadful", "weak", "forgettable", "painful", "clumsy", "mediocre", "lame", "messy", "pointless",
        "predictable", "bland",
    ),
}  # fmt: skip
VERBS = {
    POSITIVE: ("loved", "enjoyed", "adored", "liked", "admired", "treasured"),
    NEGATIVE: ("hated", "disliked", "loathed", "regretted", "resented", "despised"),
}
VERDICTS = {
    POSITIVE: (
        "i would watch it again", "highly recommended", "a must see", "worth every minute",
        "two thumbs up", "i can not wait for more",
    ),
    NEGATIVE: (
        "a waste of time", "avoid it", "i want my money back", "i walked out early",
        "not worth the ticket", "never again",
    ),
}  # fmt: skip
INTENSIFIERS = ("", "really", "very", "truly", "quite", "so", "absolutely", "incredibly")
TEMPLATES = (
    "the {noun} was {intensifier} {adjective}.",
    "i {verb} this {noun}.",
    "what a {adjective} {noun}!",
    "{adjective} {noun}, {intensifier} {adjective2} {noun2}.",
    "a {adjective} {noun} and a {adjective2} {noun2}. {verdict}.",
    "overall the {noun} is {adjective}, {verdict}.",
    "i {verb} the {noun}, it was {adjective}.",
    "{verdict}! the {noun} felt {intensifier} {adjective}.",
)
NEGATED_TEMPLATES = (
    "the {noun} was not {adjective}.",
    "the {noun} was not {adjective} at all.",
    "{verdict}, it was not {adjective}.",
)


def _choose_words(rng: random.Random, sentiment: int) -> dict[str, str]:
    adjectives = ADJECTIVES[sentiment]
    nouns = rng.sample(NOUNS, 2)
    return {
        "noun": nouns[0],
        "noun2": nouns[1],
        "adjective": rng.choice(adjectives),
        "adjective2": rng.choice(adjectives),
        "verb": rng.choice(VERBS[sentiment]),
        "verdict": rng.choice(VERDICTS[sentiment]),
        "intensifier": rng.choice(INTENSIFIERS),
    }


def sentence(rng: random.Random, label: int, negated: bool) -> str:
    """One review of sentiment ``label``; a negated one says "not <adjective of the other sentiment>"."""
    template = rng.choice(NEGATED_TEMPLATES if negated else TEMPLATES)
    words = _choose_words(rng, label)
    if negated:
        words["adjective"] = rng.choice(ADJECTIVES[1 - label])
    return " ".join(template.format(**words).split())


def _unique_sentences(rng: random.Random, label: int, count: int, negated_share: float) -> Iterator[str]:
    seen: set[str] = set()
    while len(seen) < count:
        text = sentence(rng, label, rng.random() < negated_share)
        if text not in seen:
            seen.add(text)
            yield text


def generate(per_class: int = 500, seed: int = 0, negated_share: float = 0.2) -> tuple[list[str], list[int]]:
    """``per_class`` distinct reviews of each sentiment (about ``negated_share`` of them negated), shuffled.

    Returns ``(texts, labels)`` with labels 0 (negative) and 1 (positive).
    """
    rng = random.Random(seed)
    pairs = [
        (text, label)
        for label in (NEGATIVE, POSITIVE)
        for text in _unique_sentences(rng, label, per_class, negated_share)
    ]
    rng.shuffle(pairs)
    return [text for text, _ in pairs], [label for _, label in pairs]
