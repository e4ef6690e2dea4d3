"""One server's numbers from several frontend processes (``frontend_processes`` > 1): ``/metrics`` and the
per-version summaries of whichever frontend is asked include every other frontend's.

Each frontend :func:`export` s its scrape as plain lists (they cross the control channel as msgpack), and the one
answering :func:`merge` s them, its own first, so the families come in its order. Samples with the same name and
labels combine by their family's type:

* counters, histograms and summaries add up (requests, latency sums, bucket counts are per frontend);
* the live gauges in :data:`ADDITIVE_GAUGES` (queue depth, open streams) add up too;
* any other gauge (TorchServe's ``QueueTime``, ``WorkerThreadTime``, ``WorkerLoadTime``, a handler's own gauges) is a
  last observation, not an amount: the highest value wins. The host gauges (``CPUUtilization``, ``MemoryUsed``, ...)
  are sampled by frontend 0 alone, so they are never doubled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .stats import Summary

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

ADDITIVE_GAUGES = frozenset({"modelserver_queue_depth", "modelserver_inflight_streams"})
_ADDED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram", "unknown"})

Exported = list[list[Any]]
"""``[[name, exposed_name | None, type, help, [[sample name, [[label, value], ...], value], ...]], ...]``."""


def export(families: Iterable[Metric]) -> Exported:
    """A scrape as plain lists, label order kept (``_created`` samples are never shown, so never sent)."""
    return [
        [
            family.name,
            getattr(family, "exposed_name", None),
            family.type,
            family.documentation,
            [
                [sample.name, list(sample.labels.items()), sample.value]
                for sample in family.samples
                if not sample.name.endswith("_created")
            ],
        ]
        for family in families
    ]


def merge(scrapes: Sequence[Exported]) -> list[Metric]:
    """The families of several frontends as one scrape, combined by the rules above."""
    from .families import Metric, Sample

    merged: dict[str, tuple[str | None, str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for scrape in scrapes:
        for name, exposed, kind, documentation, samples in scrape:
            entry = merged.get(name)
            if entry is None:
                entry = merged[name] = (exposed, kind, documentation, {})
            values = entry[3]
            add = kind in _ADDED_TYPES or name in ADDITIVE_GAUGES
            for sample_name, labels, value in samples:
                key = (sample_name, tuple((str(label), str(text)) for label, text in labels))
                old = values.get(key)
                if old is None:
                    values[key] = float(value)
                else:
                    values[key] = old + float(value) if add else max(old, float(value))
    families = []
    for name, (exposed, kind, documentation, values) in merged.items():
        family = Metric(name, documentation, kind)
        family.samples = [Sample(sample_name, dict(labels), value) for (sample_name, labels), value in values.items()]
        if exposed is not None:
            family.exposed_name = exposed  # type: ignore[attr-defined]  # what render prints for a counter
        families.append(family)
    return families


def export_summaries(summaries: Iterable[tuple[str, str, Summary]]) -> list[list[Any]]:
    return [
        [name, version, s.requests, s.succeeded, s.failed, s.total_latency_ms, list(s.distribution)]
        for name, version, s in summaries
    ]


def merge_summaries(exports: Sequence[list[list[Any]]]) -> list[tuple[str, str, Summary]]:
    """Per-version summaries of several frontends added up, in the order the versions first appear."""
    merged: dict[tuple[str, str], Summary] = {}
    for exported in exports:
        for name, version, requests, succeeded, failed, total_ms, distribution in exported:
            key = (str(name), str(version))
            first, second, third, over = (int(count) for count in distribution)
            summary = Summary(int(requests), int(succeeded), int(failed), float(total_ms), (first, second, third, over))
            old = merged.get(key)
            merged[key] = summary if old is None else _add(old, summary)
    return [(name, version, summary) for (name, version), summary in merged.items()]


def _add(a: Summary, b: Summary) -> Summary:
    d1, d2 = a.distribution, b.distribution
    return Summary(
        a.requests + b.requests,
        a.succeeded + b.succeeded,
        a.failed + b.failed,
        a.total_latency_ms + b.total_latency_ms,
        (d1[0] + d2[0], d1[1] + d2[1], d1[2] + d2[2], d1[3] + d2[3]),
    )
