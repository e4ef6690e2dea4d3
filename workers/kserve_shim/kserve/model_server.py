"""``kserve.model_server``: KServe's command line ``parser`` (and ``args``), and ``ModelServer``.

``ModelServer`` is the server itself, which lives in the frontend (``modelserver.kserve.model_server``). A model
script run in a worker process may name it (``kserve.ModelServer().start([model])`` ends most KServe scripts), so it
is imported from there when the name is first used: this is the only place worker code names ``modelserver``, and
only lazily, so importing ``kserve`` never imports the frontend. ``args`` (KServe parses ``sys.argv`` when this
module is imported) is parsed on first use too.
"""

from __future__ import annotations

import importlib
from typing import Any

from workers.kserve_api.server_args import parse_known_args, parser

__all__ = ["parser"]  # ModelServer and args are resolved on first use (module __getattr__)

_SERVER_MODULE = "modelserver.kserve.model_server"


def __getattr__(name: str) -> Any:
    if name == "ModelServer":
        return importlib.import_module(_SERVER_MODULE).ModelServer
    if name == "args":
        args = parse_known_args()
        globals()["args"] = args
        return args
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
