"""``kserve.model_repository``: ``ModelRepository``."""

from workers.kserve_api.model_repository import MODEL_MOUNT_DIRS, ModelRepository

__all__ = ["MODEL_MOUNT_DIRS", "ModelRepository"]
