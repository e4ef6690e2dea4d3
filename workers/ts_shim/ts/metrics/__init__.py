"""``ts.metrics``: TorchServe's backend metrics names, implemented in ``workers.backend_metrics``.

``context.metrics`` is the object handlers use; these modules give them the types to pass and catch."""
