"""TorchServe's management parameters: how ``POST /models`` and the scale call read them (TorchServe's lenient
integer and boolean rules, a JSON body read as Gson reads it) and how the API documents describe them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import lenient_json
from ..api_docs import Body, Param
from ..errors import BadRequest
from ..http_messages import Request

RUNTIMES = frozenset({"python", "LSP"})
SYNCHRONOUS = Param(
    "synchronous", "true: answer once the workers have started or stopped; default false (202 at once).", type="boolean"
)
WORKER_TIMEOUT = Param(
    "timeout",
    "Seconds a stopping worker may take to finish its requests (accepted and ignored, as by TorchServe).",
    type="integer",
)
REGISTER_PARAMS = (
    Param(
        "url",
        "Where the archive is: a name in the model store, a file:// URL or an allowed http(s) URL.",
        required=True,
    ),
    Param("model_name", "The name to serve the model under; replaces the manifest's modelName."),
    Param("handler", "The handler (file.py[:function] or a built-in name); replaces the manifest's handler."),
    Param("runtime", "The runtime of the handler code.", enum=tuple(sorted(RUNTIMES))),
    Param("batch_size", "Requests per batch; default 1.", type="integer"),
    Param("max_batch_delay", "Milliseconds a batch may wait to fill up; default 100.", type="integer"),
    Param("response_timeout", "Seconds to wait for the model's answer, default: 120.", type="integer"),
    Param("startup_timeout", "Seconds a worker may take to load the model, default: 120.", type="integer"),
    Param(
        "initial_workers",
        "Workers to start; default default_workers_per_model, or 0 when it is not set.",
        type="integer",
    ),
    Param(
        "synchronous",
        "true: answer once the workers have loaded the model (or one failed); default true.",
        type="boolean",
    ),
    Param("s3_sse_kms", "Whether the archive is S3 SSE-KMS encrypted (ignored).", type="boolean"),
)
REGISTER_BODY = Body(
    {
        "type": "object",
        "description": "The query parameters as a JSON object, when Content-Type is application/json.",
        "properties": {param.name: {"type": param.type} for param in REGISTER_PARAMS},
    },
    required=False,
)


def int_param(value: Any, default: int) -> int:
    """TorchServe's ``getIntParameter``: anything that is not an integer means the default."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return default


def bool_param(value: Any, default: bool) -> bool:
    """Java's ``Boolean.parseBoolean``: true only for "true" in any case."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def str_param(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class RegisterArgs:
    """``POST /models`` parameters; negative numbers mean "not given", as in TorchServe's RegisterModelRequest."""

    url: str | None
    model_name: str | None
    handler: str | None
    runtime: str | None
    batch_size: int
    max_batch_delay: int
    initial_workers: int
    synchronous: bool
    response_timeout: int
    startup_timeout: int

    @classmethod
    def parse(cls, source: Mapping[str, Any], default_workers: int) -> RegisterArgs:
        return cls(
            url=str_param(source.get("url")),
            model_name=str_param(source.get("model_name")) or None,
            handler=str_param(source.get("handler")) or None,
            runtime=str_param(source.get("runtime")),
            batch_size=int_param(source.get("batch_size"), -1),
            max_batch_delay=int_param(source.get("max_batch_delay"), -100),
            initial_workers=int_param(source.get("initial_workers"), default_workers),
            synchronous=bool_param(source.get("synchronous"), True),
            response_timeout=int_param(source.get("response_timeout"), -1),
            startup_timeout=int_param(source.get("startup_timeout"), -1),
        )

    def api_settings(self) -> dict[str, int]:
        """For :func:`~modelserver.model_spec.build_spec`, which ignores values <= 0."""
        return {
            "batchSize": self.batch_size,
            "maxBatchDelay": self.max_batch_delay,
            "responseTimeout": self.response_timeout,
            "startupTimeout": self.startup_timeout,
        }


async def register_source(request: Request) -> Mapping[str, Any]:
    """The JSON body when the request is ``application/json``, else the query string."""
    if request.content_type != "application/json":
        return request.query  # type: ignore[return-value]  # a multi-mapping: get() is all we read
    try:
        body = lenient_json.loads((await request.read_body()).decode("utf-8") or "{}")  # Gson reads leniently
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"Invalid JSON body: {err}") from None
    if not isinstance(body, dict):
        raise BadRequest("The JSON body must be an object.")
    return body
