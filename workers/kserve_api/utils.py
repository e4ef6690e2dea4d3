"""KServe's helpers for model code (``kserve.utils.utils`` in KServe 0.21): ``get_predict_input`` and
``get_predict_response`` (the usual glue between V1/V2 bodies and numpy or pandas), ``generate_uuid``,
``strtobool``, ``is_structured_cloudevent``, ``is_v1``/``is_v2``, ``cpu_count``.

pandas is optional: it is imported only when a body holds records (``get_predict_input``) or a request asks for a
DataFrame (``content_type: "pd"``); a pandas DataFrame result is recognised without importing pandas.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from .codec import from_np_dtype
from .constants import PredictorProtocol
from .errors import InvalidInput
from .infer_type import InferOutput, InferRequest, InferResponse

__all__ = [
    "cpu_count",
    "generate_uuid",
    "get_predict_input",
    "get_predict_response",
    "is_structured_cloudevent",
    "is_v1",
    "is_v2",
    "strtobool",
]


def generate_uuid() -> str:
    """A random uuid4 as a string."""
    return str(uuid.uuid4())


def strtobool(val: str) -> bool:
    """True for y, yes, t, true, on, 1; False for n, no, f, false, off, 0 (any case); ``ValueError`` otherwise."""
    val = val.lower()
    if val in ("y", "yes", "t", "true", "on", "1"):
        return True
    if val in ("n", "no", "f", "false", "off", "0"):
        return False
    raise ValueError(f"invalid truth value {val!r}")


def is_structured_cloudevent(body: Mapping[str, Any]) -> bool:
    """Whether a JSON body looks like a structured CloudEvent (time, type, source, id, specversion and data)."""
    return all(key in body for key in ("time", "type", "source", "id", "specversion", "data"))


def is_v2(protocol: Any) -> bool:
    return protocol == PredictorProtocol.REST_V2 or (
        isinstance(protocol, str) and protocol.lower() == PredictorProtocol.REST_V2.value
    )


def is_v1(protocol: Any) -> bool:
    return protocol == PredictorProtocol.REST_V1 or (
        isinstance(protocol, str) and protocol.lower() == PredictorProtocol.REST_V1.value
    )


def cpu_count() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v1 or v2 quota when one is set."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(count, quota)) if quota else count


def _cgroup_cpus() -> int:
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as file:
            quota, period = file.read().split()[:2]
        return int(int(quota) / int(period)) if quota != "max" else 0
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", encoding="ascii") as file:
            quota = int(file.read())
        with open("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", encoding="ascii") as file:
            period = int(file.read())
        return int(quota / period) if quota > 0 else 0
    except (OSError, ValueError):
        return 0


def _is_dataframe(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def get_predict_input(payload: Any, columns: list[str] | None = None) -> Any:
    """The model input of a body.

    V1 dict (``"inputs"`` or else ``"instances"``): records (dicts, or lists of dicts) become one pandas DataFrame
    (with ``columns``); a list of strings stays a list; anything else becomes ``np.array``. :class:`InferRequest`:
    with ``parameters.content_type == "pd"`` the DataFrame of all inputs; else the first input: its strings for
    ``BYTES`` JSON data, otherwise ``as_numpy()``."""
    if isinstance(payload, Mapping):
        instances = payload["inputs"] if "inputs" in payload else payload["instances"]
        if len(instances) == 0:
            return np.array(instances)
        first = instances[0]
        records = isinstance(first, list) and len(first) != 0 and isinstance(first[0], Mapping)
        if isinstance(first, Mapping) or records:
            import pandas as pd

            return pd.concat([pd.DataFrame(instance, columns=columns) for instance in instances], axis=0)
        if isinstance(first, str):
            return instances
        return np.array(instances)
    if isinstance(payload, InferRequest):
        content_type = payload.parameters.get("content_type") if payload.parameters else None
        if content_type == "pd":
            return payload.as_dataframe()
        first_input = payload.inputs[0]
        data = first_input.data
        if first_input.datatype == "BYTES" and isinstance(data, list) and data and isinstance(data[0], str):
            return data
        return first_input.as_numpy()
    raise InvalidInput(f"unsupported payload type {type(payload)}")


def get_predict_response(payload: Any, result: Any, model_name: str) -> Any:
    """The response of ``result`` in the body's protocol.

    V1 dict: ``{"predictions": result}`` (a DataFrame as a list of row dicts, an array as lists).
    :class:`InferRequest`: an :class:`InferResponse` with one output per DataFrame column, or one output named
    ``output-0`` (``BYTES`` for a list of strings); its id is the request's (a uuid when it has none), and it keeps
    the request's ``binary_data_output`` and requested outputs, so ``to_rest`` answers as the client asked."""
    if isinstance(payload, Mapping):
        if _is_dataframe(result):
            predictions: Any = [row.to_dict() for _, row in result.iterrows()]
        elif isinstance(result, np.ndarray):
            predictions = result.tolist()
        else:
            predictions = result
        return {"predictions": predictions}
    if isinstance(payload, InferRequest):
        binary = payload.use_binary_outputs
        outputs = []
        if _is_dataframe(result):
            for column in result.columns:
                values = result[column]
                output = InferOutput(name=column, shape=list(values.shape), datatype=from_np_dtype(values.dtype))
                output.set_data_from_numpy(values.to_numpy(), binary_data=binary)
                outputs.append(output)
        elif isinstance(result, list) and len(result) > 0 and isinstance(result[0], str):
            output = InferOutput(name="output-0", shape=[len(result)], datatype="BYTES")
            output.set_data_from_numpy(np.array(result, dtype=np.object_), binary_data=binary)
            outputs.append(output)
        else:
            array = np.array(result) if isinstance(result, list) else result
            datatype = from_np_dtype(array.dtype)
            if datatype is None:
                raise InvalidInput(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")
            output = InferOutput(name="output-0", shape=list(array.shape), datatype=datatype)
            output.set_data_from_numpy(array, binary_data=binary)
            outputs.append(output)
        return InferResponse(
            model_name=model_name,
            infer_outputs=outputs,
            response_id=payload.id if payload.id else generate_uuid(),
            use_binary_outputs=binary,
            requested_outputs=payload.request_outputs,
        )
    raise InvalidInput(f"unsupported payload type {type(payload)}")
