"""``ts.torch_handler.unit_tests.test_utils.mock_context``: ``MockContext``, the stand-in context handler unit tests
pass to ``initialize`` without a server (TorchServe 0.12's constructor arguments)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from workers.backend_metrics import Metrics


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class MockContext:
    """A manifest naming ``model_pt_file`` and ``model_file``, ``system_properties`` with ``model_dir`` (and
    ``gpu_id`` when CUDA is there), ``metrics`` that print lines, and ``model_yaml_config`` read from
    ``model_dir/model_yaml_config_file`` if given."""

    def __init__(
        self,
        model_pt_file: str | None = "model.pt",
        model_dir: str = "ts/torch_handler/unit_tests/models/tmp",
        model_file: str | None = "model.py",
        gpu_id: str | None = "0",
        model_name: str = "mnist",
        model_yaml_config_file: str | None = None,
    ) -> None:
        model: dict[str, Any] = {}
        if model_pt_file:
            model["serializedFile"] = model_pt_file
        if model_file:
            model["modelFile"] = model_file
        self.manifest = {"model": model}
        self.system_properties: dict[str, Any] = {"model_dir": model_dir}
        if gpu_id and _cuda_available():
            self.system_properties["gpu_id"] = gpu_id
        self.explain = False
        self.metrics = Metrics(model_name)
        self.model_yaml_config: dict[str, Any] = {}
        if model_yaml_config_file:
            from ts.utils.util import get_yaml_config

            self.model_yaml_config = get_yaml_config(os.path.join(model_dir, model_yaml_config_file))

    def get_request_header(self, idx: int, exp: str) -> bool:
        """True only for an explanation header of a later request while ``explain`` is set, as TorchServe's mock."""
        return bool(idx and exp and self.explain)
