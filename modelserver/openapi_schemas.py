"""The component schemas of our OpenAPI documents: every JSON body a route takes or gives, error bodies included.

TorchServe 0.12 writes the same schemas inline in every operation; we name them once under ``components`` and refer
to them. A document carries only the schemas its routes use (:func:`referenced`). Schemas say what is always
there (``required``) and leave the rest open: a model's own answer may add fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SCHEMAS", "ref", "referenced"]

REF_PREFIX = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_PREFIX + name}


def _string(description: str = "") -> dict[str, Any]:
    return {"type": "string", "description": description} if description else {"type": "string"}


def _integer(description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "format": "int64"}
    if description:
        schema["description"] = description
    return schema


def _object(required: Iterable[str] = (), description: str = "", **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    names = list(required)
    if names:
        schema["required"] = names
    schema["properties"] = properties
    return schema


def _array(items: Mapping[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": dict(items)}
    if description:
        schema["description"] = description
    return schema


_BOOLEAN = {"type": "boolean"}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}

_TORCHSERVE: dict[str, dict[str, Any]] = {
    "Error": _object(
        ("code", "type", "message"),
        "TorchServe's error body.",
        code=_integer("The HTTP status code."),
        type=_string("The error class, e.g. ModelNotFoundException."),
        message=_string("Error message."),
    ),
    "Status": _object(("status",), "A status message.", status=_string("What happened.")),
    "ApiDescription": _object(
        ("openapi", "info", "paths"),
        "An OpenAPI 3.0.1 document.",
        openapi=_string(),
        info=_ANY_OBJECT,
        paths=_ANY_OBJECT,
        components=_ANY_OBJECT,
    ),
    "ModelList": _object(
        ("models",),
        nextPageToken=_string("Pass it as next_page_token for the next page; absent on the last page."),
        models=_array(
            _object(("modelName", "modelUrl"), modelName=_string("Name of the model."), modelUrl=_string()),
            "The registered models (default versions), by name.",
        ),
    ),
    "ModelDescription": _object(
        ("modelName", "modelVersion", "modelUrl", "minWorkers", "maxWorkers", "workers", "jobQueueStatus"),
        "One model version, its settings and its workers.",
        modelName=_string(),
        modelVersion=_string(),
        modelUrl=_string(),
        runtime=_string(),
        minWorkers=_integer(),
        maxWorkers=_integer(),
        batchSize=_integer(),
        maxBatchDelay=_integer("In milliseconds."),
        responseTimeout=_integer("In seconds."),
        startupTimeout=_integer("In seconds."),
        loadedAtStartup=_BOOLEAN,
        workers=_array(
            _object(
                ("id", "startTime", "status"),
                id=_string(),
                startTime=_string(),
                status={"type": "string", "enum": ["READY", "LOADING", "UNLOADING"]},
                pid=_integer(),
                gpu=_BOOLEAN,
            )
        ),
        jobQueueStatus=_object(
            ("remainingCapacity", "pendingRequests"), remainingCapacity=_integer(), pendingRequests=_integer()
        ),
        customizedMetadata={"description": "What the handler's describe_handle returned (customized=true)."},
    ),
    "ModelDescriptions": _array(ref("ModelDescription")),
    "ModelReadiness": _object(("name", "ready"), name=_string(), ready=_BOOLEAN),
    "WorkflowList": _object(
        ("workflows",),
        nextPageToken=_string("Pass it as next_page_token for the next page; absent on the last page."),
        workflows=_array(
            _object(("workflowName", "workflowUrl"), workflowName=_string(), workflowUrl=_string()),
            "The registered workflows, by name.",
        ),
    ),
    "WorkflowDescriptions": _array(
        _object(
            ("workflowName", "workflowUrl", "minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "workflowDag"),
            "One workflow: the settings its specification gives all its models, and its DAG.",
            workflowName=_string(),
            workflowUrl=_string(),
            minWorkers=_integer(),
            maxWorkers=_integer(),
            batchSize=_integer(),
            maxBatchDelay=_integer("In milliseconds."),
            workflowDag=_string("The dag section as Java prints a map: {node=[next, ...], ...}."),
        )
    ),
}

_TENSOR_DATA = {"description": "The tensor's elements, flat or nested, in row-major order."}
_TENSOR = _object(
    ("name", "shape", "datatype"),
    name=_string(),
    shape=_array(_integer()),
    datatype=_string("BOOL, UINT8, ..., INT64, FP16, FP32, FP64, BYTES"),
    parameters=_ANY_OBJECT,
    data=_TENSOR_DATA,
)

_KSERVE: dict[str, dict[str, Any]] = {
    "KServeError": _object(
        (),
        'KServe\'s error body: {"error": message}; {"detail": ...} for an unknown path or method.',
        error=_string(),
        detail=_string(),
    ),
    "AnyError": {
        "description": "The error body of the model's protocol: TorchServe's or KServe's.",
        "anyOf": [ref("Error"), ref("KServeError")],
    },
    "KServeAlive": _object(("status",), status=_string()),
    "ModelNames": _object(("models",), models=_array(_string())),
    "ServerMetadata": _object(
        ("name", "version", "extensions"), name=_string(), version=_string(), extensions=_array(_string())
    ),
    "ServerLive": _object(("live",), live=_BOOLEAN),
    "ServerReady": _object(("ready",), ready=_BOOLEAN),
    "ModelMetadata": _object(
        ("name", "versions", "platform", "inputs", "outputs"),
        name=_string(),
        versions=_array(_string()),
        platform=_string(),
        inputs=_array(_ANY_OBJECT),
        outputs=_array(_ANY_OBJECT),
    ),
    "Tensor": _TENSOR,
    "InferenceRequest": _object(
        ("inputs",),
        "An Open Inference Protocol request (JSON; binary tensors follow the JSON header when "
        "Inference-Header-Content-Length says so).",
        id=_string(),
        parameters=_ANY_OBJECT,
        inputs=_array(ref("Tensor")),
        outputs=_array(_object(("name",), name=_string(), parameters=_ANY_OBJECT)),
    ),
    "InferenceResponse": _object(
        (),
        "An Open Inference Protocol answer: model_name, model_version, id and outputs; a model served by its "
        "TorchServe handler answers what the handler returns.",
        model_name=_string(),
        model_version=_string(),
        id=_string(),
        parameters=_ANY_OBJECT,
        outputs=_array(_ANY_OBJECT),
    ),
    "RepositoryIndex": _array(
        _object(
            ("name", "state"),
            name=_string(),
            version=_string(),
            state={"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
            reason=_string(),
        )
    ),
    "RepositoryAction": _object(("name",), name=_string(), load=_BOOLEAN, unload=_BOOLEAN),
    "TritonConfig": _object(("name",), "Triton's model configuration.", name=_string(), platform=_string()),
    "TritonStats": _object(("model_stats",), "Triton's inference statistics.", model_stats=_array(_ANY_OBJECT)),
}

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_MINDSPORE_ANGEL: dict[str, dict[str, Any]] = {
    "MindSporeError": _object(
        ("error_msg",), 'MindSpore Serving\'s error body: {"error_msg": message}.', error_msg=_string()
    ),
    "MindSporeReply": _object(
        (),
        'One entry per request instance, in order: its outputs by name, or {"error_msg": ...}; a request-level '
        'failure is {"error_msg": ...} alone (HTTP 200 unless mindspore_http_status=true).',
        instances=_array(_ANY_OBJECT),
        error_msg=_string(),
    ),
    "MindSporeRequest": _object(
        ("instances",),
        instances={"description": "One instance (an object of inputs by name) or a list of them."},
    ),
    "AngelRequest": _object(
        ("instances",),
        instances=_array(
            {}, "Dense vectors, kv maps, {values, key}, {sparseIndices, sparseValues} or index:value lines"
        ),
    ),
    "AngelStatus": _object(
        ("model_version_status",),
        "Angel's status (with KServe's name and ready).",
        name=_string(),
        ready=_BOOLEAN,
        model_version_status=_array(_object(("version", "state"), version=_string(), state=_string())),
        typeMap=_STRING_MAP,
        dim=_string(),
    ),
    "AngelPredictions": _object(
        (),
        'String-valued prediction maps in instance order (a failed instance: {"error": ...}), or {"error": ...}.',
        predictions=_array(_STRING_MAP),
        error=_string(),
    ),
    "AngelMetrics": _object(
        (),
        "Per model and version: prediction_count_total/success/failed, total_predict_time_ms, count_distribution0..3.",
        models=_ANY_OBJECT,
    ),
}

SCHEMAS: Mapping[str, Mapping[str, Any]] = {**_TORCHSERVE, **_KSERVE, **_MINDSPORE_ANGEL}


def referenced(value: Any) -> list[str]:
    """The component names ``value`` refers to, with the ones those refer to, in first-reference order."""
    found: dict[str, None] = {}
    pending = list(_refs(value))
    while pending:
        name = pending.pop(0)
        if name in found:
            continue
        found[name] = None
        pending.extend(_refs(SCHEMAS[name]))
    return list(found)


def _refs(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        target = value.get("$ref")
        if isinstance(target, str) and target.startswith(REF_PREFIX):
            yield target[len(REF_PREFIX) :]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _refs(item)
