"""TorchServe's Prometheus text: :func:`render` prints prometheus-client metric families the way TorchServe's Java
client (simpleclient 0.9.0, ``TextFormat.write004``) printed them, and :func:`java_double` prints a value as Java's
``Double.toString``.

Why not prometheus-client's own ``generate_latest``: TorchServe's Postman collection and pytest suite match the
lines with regular expressions, and the Java client differed from it in four ways: counters keep their registered
name (no ``_total`` added), every label is followed by a comma, values are Java doubles (``8.0``, ``1.0E-4``), and
there are no ``_created`` samples. This module knows nothing about where the families come from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


def render(families: Iterable[Metric], names: Iterable[str] = ()) -> str:
    """Families in TorchServe's Prometheus text (simpleclient 0.9.0 ``TextFormat.write004``).

    ``names`` (``name[]`` parameters) keeps only samples with those names, and families that then have none are
    left out, as TorchServe filters; naming a family (a histogram's base name) keeps all of its samples.
    """
    wanted = frozenset(names)
    parts: list[str] = []
    for family in families:
        exposed = getattr(family, "exposed_name", None) or _sample_name(family)
        samples = [_exposed_sample(family, exposed, s) for s in family.samples if not s.name.endswith("_created")]
        if wanted:
            if exposed not in wanted:
                samples = [s for s in samples if s[0] in wanted]
            if not samples:
                continue
        kind = "untyped" if family.type == "unknown" else family.type
        parts.append(f"# HELP {exposed} {_escape_help(family.documentation)}\n# TYPE {exposed} {kind}\n")
        parts.extend(f"{name}{_labels(labels)} {java_double(value)}\n" for name, labels, value in samples)
    return "".join(parts)


def _sample_name(family: Metric) -> str:
    """A counter's samples are ``<name>_total`` in prometheus-client's model."""
    return family.name + "_total" if family.type == "counter" else family.name


def _exposed_sample(family: Metric, exposed: str, sample: Any) -> tuple[str, Mapping[str, str], float]:
    name = exposed if family.type == "counter" else sample.name
    return name, sample.labels, sample.value


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + "".join(f'{k}="{_escape_label(v)}",' for k, v in labels.items()) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def java_double(value: float) -> str:
    """A double as simpleclient printed it: Java's ``Double.toString`` (``8.0``, ``1.2345678E7``, ``1.0E-4``).

    Both print the shortest digits that round-trip; Java switches to ``d.dddE<n>`` outside ``[1e-3, 1e7)``.
    """
    value = float(value)
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7 or magnitude == 0.0:
        return repr(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(magnitude)
    if "e" in text:  # Python's exponent form has one digit before the point: 1.2345e-05
        mantissa, _, exponent = text.partition("e")
        digits, power = mantissa.replace(".", ""), int(exponent)
    else:  # positional: 12345678.9 or 0.00012345
        integer, _, fraction = text.partition(".")
        padded = integer + fraction
        digits = padded.lstrip("0")
        power = len(integer) - 1 - (len(padded) - len(digits))
    digits = digits.rstrip("0") or "0"
    return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:] or '0'}E{power}"
