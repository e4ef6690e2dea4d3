"""``ts.launcher``: TorchServe's test helpers, starting and stopping our server (``modelserver.ts_launcher``)."""

from modelserver.ts_launcher import register_model, register_model_with_params, start, stop

__all__ = ["register_model", "register_model_with_params", "start", "stop"]
