"""The ``ts.utils.util`` helpers our handlers share with TorchServe's: the real package's, else the shim's.

Outside a worker nobody may have put the shim on ``sys.path`` yet, so importing this module does
(a real TorchServe installation keeps precedence, as in the worker).
"""

from workers.ts_compat import install_ts_shim

install_ts_shim()

from ts.utils.util import PredictionException, load_label_mapping, map_class_to_label  # noqa: E402

__all__ = ["PredictionException", "load_label_mapping", "map_class_to_label"]
