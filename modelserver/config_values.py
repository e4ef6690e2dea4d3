"""Typed values of ``config.properties`` keys: integers, booleans, choices, directories, ``load_models`` and the
``models=`` JSON, each refused with a :class:`ConfigError` naming the key when it is malformed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from modelserver.properties import ConfigError

_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_SHOWN = 200


def shown(value: str) -> str:
    """``repr`` of a value for an error message, shortened if it is long (a ``models=`` JSON can be)."""
    return repr(value) if len(value) <= _MAX_SHOWN else repr(value[:_MAX_SHOWN]) + "..."


def get_choice(properties: Mapping[str, str], key: str, default: str, known: tuple[str, ...]) -> str:
    value = properties.get(key)
    if value is None or not value.strip():
        return default
    choice = value.strip().lower()
    if choice not in known:
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(known)}")
    return choice


def get_choices(properties: Mapping[str, str], key: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated subset of ``known``, in the given order, without repeats; all of them when not set."""
    value = properties.get(key)
    if value is None or not value.strip():
        return known
    choices = tuple(dict.fromkeys(item.strip().lower() for item in value.split(",") if item.strip()))
    unknown = [choice for choice in choices if choice not in known]
    if unknown or not choices:
        raise ConfigError(f"{key}={value!r}: expected a comma-separated list of {', '.join(known)}")
    return choices


def get_bool(properties: Mapping[str, str], key: str, default: bool) -> bool:
    value = properties.get(key)
    if value is None:
        return default
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise ConfigError(f"{key}: expected true or false, got {shown(value)}")
    return word == "true"


def get_int(properties: Mapping[str, str], key: str, default: int, *, minimum: int = 0) -> int:
    value = properties.get(key)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value.strip()):
        raise ConfigError(f"{key}: expected an integer, got {shown(value)}")
    number = int(value)
    if number < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, got {shown(value)}")
    return number


def get_directory(properties: Mapping[str, str], key: str, cwd: str) -> str | None:
    value = properties.get(key)
    if value is None:
        return None
    path = os.path.realpath(os.path.join(cwd, value))
    if not os.path.isdir(path):
        raise ConfigError(f"{key}: {shown(value)} is not an existing directory")
    return path


def parse_load_models(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if value.strip().lower() == "all":
        return ("all",)
    return tuple(entry.strip() for entry in value.split(",") if entry.strip())


def parse_models(value: str | None) -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
    """Parse ``models=`` JSON: ``{"name": {"version": {"minWorkers": 1, ...}}}``, deeply frozen."""
    if value is None:
        return MappingProxyType({})
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigError(f"models: invalid JSON ({err}): {shown(value)}") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(versions, dict) and all(isinstance(settings, dict) for settings in versions.values())
        for versions in parsed.values()
    ):
        raise ConfigError(f"models: expected {{name: {{version: {{...}}}}}}, got {shown(value)}")
    return freeze(parsed)


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    return value
