"""What one frontend process sends the others after a management call (:func:`modelserver.model_sync.diff`), and
what it remembers after applying theirs (:func:`~modelserver.model_sync.absorb`)."""

from __future__ import annotations

from typing import Any

from modelserver.model_sync import absorb, diff, full


def state(name: str, version: str, workers: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "recipe": {"source": f"/store/{name}", "name": name, "url": name},
        "settings": {"minWorkers": workers, "maxWorkers": workers},
        "target": [workers, workers],
    }


def of(*states: dict[str, Any], defaults: dict[str, str] | None = None) -> dict[str, Any]:
    versions = {(s["name"], s["version"]): s for s in states}
    return {"versions": versions, "defaults": defaults or {s["name"]: s["version"] for s in states}}


def test_nothing_changed() -> None:
    assert diff(of(state("a", "1")), of(state("a", "1"))) is None


def test_a_registration_a_scale_and_an_unregistration() -> None:
    known = of(state("a", "1"), state("b", "1"))
    current = of(state("a", "1", workers=3), state("c", "2"))
    assert diff(known, current) == {
        "upsert": [state("a", "1", workers=3), state("c", "2")],
        "remove": [["b", "1"]],
        "defaults": {"c": "2"},
    }


def test_a_new_default_version() -> None:
    known = of(state("a", "1"), state("a", "2"), defaults={"a": "1"})
    current = of(state("a", "1"), state("a", "2"), defaults={"a": "2"})
    assert diff(known, current) == {"upsert": [], "remove": [], "defaults": {"a": "2"}}


def test_absorbing_another_frontends_change_keeps_an_unpublished_one_of_our_own() -> None:
    known = of(state("a", "1"), state("mine", "1"))
    # This frontend dropped "mine" (a failed registration) and has not published it yet; meanwhile another
    # frontend registered "b".
    change = {"upsert": [state("b", "1")], "remove": [], "defaults": {"b": "1"}}
    current = of(state("a", "1"), state("b", "1"))
    remembered = absorb(known, change, current)
    assert sorted(remembered["versions"]) == [("a", "1"), ("b", "1"), ("mine", "1")]
    assert diff(remembered, current) == {"upsert": [], "remove": [["mine", "1"]], "defaults": {}}


def test_a_change_that_could_not_be_applied_is_not_remembered_as_applied() -> None:
    known = of(state("a", "1"))
    change = {"upsert": [state("broken", "1")], "remove": [["a", "1"]], "defaults": {"broken": "1"}}
    current = of()
    assert absorb(known, change, current) == of()


def test_everything_as_one_change() -> None:
    assert full(of(state("a", "1"), state("a", "2"), defaults={"a": "2"})) == {
        "upsert": [state("a", "1"), state("a", "2")],
        "remove": [],
        "defaults": {"a": "2"},
    }
