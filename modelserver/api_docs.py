"""What a route says about itself for its OpenAPI document: query and header parameters, bodies and answers.

Plain data, no behaviour: :class:`~modelserver.router.Route` carries these, :mod:`modelserver.openapi` renders them.
A schema is the name of a component schema (:mod:`modelserver.openapi_schemas`), an inline JSON schema, or None
for "anything" (any JSON value, or any bytes for a non-JSON media type).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON = "application/json"
ANY_MEDIA = "*/*"
"""The media type of a body whose format is the model handler's business (TorchServe documents it so too)."""
BINARY: Mapping[str, Any] = {"type": "string", "format": "binary"}

Schema = str | Mapping[str, Any] | None


@dataclass(frozen=True)
class Param:
    """A query (or header) parameter. ``type`` is a JSON-schema type; an ``array`` holds ``items`` strings."""

    name: str
    description: str = ""
    location: str = "query"
    type: str = "string"
    required: bool = False
    default: Any = None
    enum: tuple[str, ...] = ()
    example: Any = None


@dataclass(frozen=True)
class Body:
    """A request body: the media types it may come in, all with one schema."""

    schema: Schema = None
    media_types: tuple[str, ...] = (JSON,)
    description: str = ""
    required: bool = True


@dataclass(frozen=True)
class Reply:
    """One documented answer: its description, the media types its body may have and their schema.

    ``media_types=()`` documents an answer without a body."""

    description: str = ""
    schema: Schema = None
    media_types: tuple[str, ...] = (JSON,)


ANYTHING: Mapping[str, Any] = {"description": "Any body: bytes, text or JSON, as the model chose."}


def handler_output(description: str = "Output data format is defined by each model.") -> Reply:
    """An answer whose body is whatever the model's handler returned, in whatever media type it chose: an empty
    schema, not TorchServe's ``string``/``binary``, which a JSON answer (a KServe model's, a handler's dict) is not."""
    return Reply(description, ANYTHING, (ANY_MEDIA,))


def handler_input(description: str = "Input data format is defined by each model.", required: bool = False) -> Body:
    """A request body handed to the model's handler as it came."""
    return Body(BINARY, (ANY_MEDIA,), description, required)
