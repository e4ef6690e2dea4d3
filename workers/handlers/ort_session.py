"""ONNX models through onnxruntime, an optional dependency detected at load time."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

ORT_MISSING = "ONNX model {path!r} needs onnxruntime: pip install onnxruntime"

_NUMPY_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}
"""onnxruntime's input type names -> numpy dtypes, so a JSON list of ints can feed a float input."""


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def create_session(path: str, map_location: str) -> Any:
    """An ``InferenceSession`` with the CUDA provider first on a GPU worker (TensorRT first when present)."""
    if not onnxruntime_available():
        raise RuntimeError(ORT_MISSING.format(path=os.path.basename(path)))
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if map_location == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
        if "TensorrtExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "TensorrtExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(path, providers=providers, sess_options=options)


def is_session(model: Any) -> bool:
    """Duck-typed, so that checking never imports onnxruntime."""
    return callable(getattr(model, "run", None)) and callable(getattr(model, "get_inputs", None))


def run_session(session: Any, data: Any) -> Any:
    """Feed ``data`` (a tensor) to the session's first input; the first output comes back as a tensor."""
    import torch

    first_input = session.get_inputs()[0]
    array = data.detach().cpu().numpy()
    dtype = _NUMPY_DTYPES.get(first_input.type)
    if dtype is not None and str(array.dtype) != dtype:
        array = array.astype(dtype)
    outputs = session.run(None, {first_input.name: array})
    return torch.from_numpy(outputs[0])
