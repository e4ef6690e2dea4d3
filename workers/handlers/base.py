"""``BaseHandler``: TorchServe 0.12's default handler (``ts/torch_handler/base_handler.py``), reimplemented.

It loads the model the manifest names (an eager ``modelFile`` + state dict, a TorchScript ``.pt`` or
an ONNX file), then serves ``handle(data, context)`` as ``postprocess(inference(preprocess(data)))``,
with TorchServe's describe and explain switches carried by request headers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import time
from typing import Any

import torch

from . import explain, ort_session
from .timing import timed
from .ts_util import PredictionException, load_label_mapping

logger = logging.getLogger(__name__)

NO_WEIGHTS = "No model weights could be loaded"


def select_device(gpu_id: int | None) -> tuple[str, torch.device]:
    """``(map_location, device)``: the worker's GPU when it has one and torch can use it, else the CPU."""
    if gpu_id is not None and torch.cuda.is_available():
        return "cuda", torch.device(f"cuda:{gpu_id}")
    if gpu_id is not None and torch.backends.mps.is_available():
        return "mps", torch.device("mps")
    return "cpu", torch.device("cpu")


def request_payload(row: Any) -> Any:
    """The request's input: ``data`` else ``body`` of a request dict (TorchServe's compat rule); other rows as is."""
    if not isinstance(row, dict):
        return row
    value = row.get("data")
    return row.get("body") if value is None else value


def decode_json(value: Any) -> Any:
    """A JSON document sent as bytes or text (say without a JSON content type) becomes its value."""
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8")
    return json.loads(value) if isinstance(value, str) else value


class BaseHandler:
    """Loads TorchScript, eager (state dict) or ONNX models and serves them; subclass it to customise a stage."""

    def __init__(self) -> None:
        self.model: Any = None
        self.mapping: dict[str, str] | None = None
        self.device: torch.device | None = None
        self.initialized = False
        self.context: Any = None
        self.model_pt_path: str | None = None
        self.manifest: dict[str, Any] | None = None
        self.map_location: str | None = None
        self.explain = False
        self.target = 0
        self.profiler_args: dict[str, Any] = {}
        self.model_yaml_config: dict[str, Any] = {}

    # -- loading --------------------------------------------------------------------------------

    def initialize(self, context: Any) -> None:
        """Pick the device, load the model and ``index_to_name.json``; raises RuntimeError when no model loads."""
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        properties = context.system_properties
        self.map_location, self.device = select_device(properties.get("gpu_id"))
        self.manifest = context.manifest
        model_dir = properties.get("model_dir")
        self.model_pt_path = self._serialized_file_path(model_dir)
        self.model = self._load_model(model_dir)
        self.model = self._maybe_compile(self.model)
        logger.debug("Model file %s loaded successfully", self.model_pt_path)
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    def _model_manifest(self) -> dict[str, Any]:
        return (self.manifest or {}).get("model") or {}

    def _serialized_file_path(self, model_dir: str) -> str | None:
        serialized_file = self._model_manifest().get("serializedFile")
        return os.path.join(model_dir, serialized_file) if serialized_file else None

    def _load_model(self, model_dir: str) -> Any:
        """TorchServe's order: a model file means eager; else the serialized file's extension decides."""
        model_file = self._model_manifest().get("modelFile", "")
        path = self.model_pt_path or ""
        if model_file:
            return self._load_eager_model(model_dir, model_file)
        if path.endswith(".pt"):
            model = self._load_torchscript_model(path)
            model.eval()
            return model
        if path.endswith(".onnx"):
            session = ort_session.create_session(path, self.map_location or "cpu")
            logger.info("Successfully set up the ONNX Runtime session")
            return session
        raise RuntimeError(NO_WEIGHTS)

    def _load_eager_model(self, model_dir: str, model_file: str) -> Any:
        model = self._load_pickled_model(model_dir, model_file, self.model_pt_path)
        model.to(self.device)
        model.eval()
        return model

    def _load_torchscript_model(self, model_pt_path: str) -> Any:
        return torch.jit.load(model_pt_path, map_location=self.device)

    def _load_pickled_model(self, model_dir: str, model_file: str, model_pt_path: str | None) -> Any:
        """Instantiate the one ``nn.Module`` class defined in the model file, then load the state dict into it.

        ``weights_only=True``: a state dict is tensors only, so nothing else in the file may run code.
        """
        if not os.path.isfile(os.path.join(model_dir, model_file)):
            raise RuntimeError("Missing the model.py file")
        module = importlib.import_module(os.path.splitext(os.path.basename(model_file))[0])
        model = _single_module_class(module)()
        if model_pt_path:
            state_dict = torch.load(model_pt_path, map_location=self.device, weights_only=True)
            model.load_state_dict(state_dict)
        return model

    def _maybe_compile(self, model: Any) -> Any:
        """``pt2`` in model-config.yaml opts in to ``torch.compile``; a failed compile keeps the eager model."""
        options = compile_options(self.model_yaml_config.get("pt2"))
        if options is None or ort_session.is_session(model):
            return model
        try:
            compiled = torch.compile(model, **options)
        except Exception:
            logger.warning("Compiling the model with %s failed; proceeding without compilation", options, exc_info=True)
            return model
        logger.info("Compiled model with %s", options)
        return compiled

    # -- serving --------------------------------------------------------------------------------

    @timed
    def preprocess(self, data: list[Any]) -> Any:
        """One tensor for the batch: each request's ``data``/``body`` (JSON numbers) stacked by ``torch.as_tensor``."""
        return torch.as_tensor([decode_json(request_payload(row)) for row in data], device=self.device)

    @timed
    def inference(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        if ort_session.is_session(self.model):
            return ort_session.run_session(self.model, data)
        with torch.inference_mode():
            return self.model(data.to(self.device), *args, **kwargs)

    @timed
    def postprocess(self, data: Any) -> list[Any]:
        return data.tolist()

    def handle(self, data: list[Any], context: Any) -> list[Any]:
        """Describe, explain or predict, as the first request's headers say; records ``HandlerTime``."""
        start = time.time()
        self.context = context
        if self._is_describe():
            output = [self.describe_handle()]
        else:
            data_preprocess = self.preprocess(data)
            if self._is_explain():
                output = self.explain_handle(data_preprocess, data)
            else:
                output = self.postprocess(self.inference(data_preprocess))
        context.metrics.add_time("HandlerTime", round((time.time() - start) * 1000, 2), None, "ms")
        return output

    def explain_handle(self, data_preprocess: Any, raw_data: list[Any]) -> Any:
        """Captum attributions for the batch; ``target`` (the class to explain) comes from the first request."""
        row = raw_data[0] if raw_data else None
        inputs, target = None, 0
        if isinstance(row, dict):
            inputs = request_payload(row)
            target = explain.parse_target(row.get("target"))
        return self.get_insights(data_preprocess, inputs, target)

    def get_insights(self, tensor_data: Any, _raw_input: Any, target: Any = 0) -> list[Any]:
        """Integrated Gradients per input (TorchServe's base handler has none; its subclasses define this)."""
        if ort_session.is_session(self.model):
            raise PredictionException("Explanations are not supported for ONNX models", 501)
        return explain.attribute_inputs(self.model, tensor_data.to(self.device), target)

    def _is_explain(self) -> bool:
        if self._request_header("explain") == "True":
            self.explain = True
            return True
        return False

    def _is_describe(self) -> bool:
        return self._request_header("describe") == "True"

    def _request_header(self, name: str) -> Any:
        return self.context.get_request_header(0, name) if self.context else None

    def describe_handle(self) -> Any:
        """Custom metadata for ``describe``; TorchServe's default has none (None, sent as ``null``)."""
        return None

    def get_device(self) -> torch.device | None:
        return self.device


def _single_module_class(module: Any) -> type:
    """The model file must define exactly one ``nn.Module`` class (helpers that are not modules are ignored)."""
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__ and issubclass(member, torch.nn.Module)
    ]
    if len(classes) != 1:
        raise ValueError(f"Expected only one class as model definition. {classes}")
    return classes[0]


def compile_options(pt2: Any) -> dict[str, Any] | None:
    """``torch.compile`` kwargs from the YAML's ``pt2`` value, or None when compilation is not asked for.

    Accepted: ``{compile: {enable: true, <kwargs>}}``; the deprecated ``"backend"`` string or ``{<kwargs>}``;
    ``{export: ...}`` (AOT export) is not compilation. An unknown backend is refused, as TorchServe does.
    """
    if pt2 is None or (isinstance(pt2, dict) and "export" in pt2 and "compile" not in pt2):
        return None
    if isinstance(pt2, str):
        options: dict[str, Any] = {"backend": pt2}
    elif isinstance(pt2, dict) and isinstance(pt2.get("compile"), dict):
        settings = dict(pt2["compile"])
        if not settings.pop("enable", False):
            return None
        options = settings
    elif isinstance(pt2, dict):
        options = dict(pt2)
    else:
        raise ValueError("pt2 should be str or dict")
    return options if _valid_backend(options.get("backend")) else None


def _valid_backend(backend: Any) -> bool:
    if backend is None:
        return True
    import torch._dynamo  # only models that opt in to compilation pay for importing dynamo

    if backend in torch._dynamo.list_backends(exclude_tags=()):
        return True
    logger.warning("%s is not a supported torch.compile backend", backend)
    return False
