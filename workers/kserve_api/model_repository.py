"""``ModelRepository``: the models a server holds, by name (KServe 0.21's ``kserve.model_repository``, which
follows Triton's model repository extension). Insertion order is the listing order."""

from __future__ import annotations

import os
from typing import Any

from .errors import ModelNotFound
from .model import BaseKServeModel

__all__ = ["MODEL_MOUNT_DIRS", "ModelRepository"]

MODEL_MOUNT_DIRS = "/mnt/models"


class _UnknownModel(ModelNotFound, KeyError):
    """``unload`` of a name the repository does not hold: KServe raises ``KeyError`` there (its server answers 404);
    ours is both, so code catching either works."""

    def __str__(self) -> str:
        return self.reason


class ModelRepository:
    """``ModelRepository(models_dir="/mnt/models")``: ``models`` (name -> model) and ``models_dir``.

    ``load(name)`` is the hook a repository that can load models on request overrides (sync or async; the
    server's ``/v2/repository/models/{name}/load`` calls it, then checks ``is_model_ready``)."""

    def __init__(self, models_dir: str = MODEL_MOUNT_DIRS) -> None:
        self.models: dict[str, BaseKServeModel] = {}
        self.models_dir = models_dir

    def load_models(self) -> None:
        """Call :meth:`load_model` for each directory in ``models_dir``."""
        for name in os.listdir(self.models_dir):
            if os.path.isdir(os.path.join(self.models_dir, name)):
                self.load_model(name)

    def set_models_dir(self, models_dir: str) -> None:
        self.models_dir = models_dir

    def get_model(self, name: str) -> BaseKServeModel | None:
        """The model registered as ``name``, or None."""
        return self.models.get(name)

    def get_models(self) -> dict[str, BaseKServeModel]:
        """Every model by name, in registration order (the dict itself, as in KServe)."""
        return self.models

    async def is_model_ready(self, name: str) -> bool:
        """False for an unknown name, else the model's ``await healthy()``."""
        model = self.get_model(name)
        if not model:
            return False
        return await model.healthy()

    def update(self, model: BaseKServeModel, name: str | None = None) -> None:
        """Add or replace ``model`` under ``name`` (default: ``model.name``); one model may have several names."""
        self.models[name or model.name] = model

    def load(self, name: str) -> Any:
        """Load the model ``name`` (override it; sync or async). Does nothing by default."""
        return None

    def load_model(self, name: str) -> Any:
        """Load the model in ``models_dir/name`` (override it). Does nothing by default."""
        return None

    def unload(self, name: str) -> None:
        """Stop the model (``stop()``, then ``stop_engine()`` when it has an engine) and forget ``name``;
        :class:`~workers.kserve_api.errors.ModelNotFound` (also a ``KeyError``) for an unknown name."""
        if name not in self.models:
            raise _UnknownModel(name)
        model = self.models[name]
        if callable(getattr(model, "stop", None)):
            model.stop()
        if getattr(model, "engine", False):
            model.stop_engine()
        del self.models[name]
