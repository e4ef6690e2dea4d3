"""This server started the way a KServe user starts a model script, with our ``ModelServer`` in place of KServe's:
``handlers/kserve_echo_ours.py`` imports the model class of ``handlers/kserve_echo.py`` (the file KServe runs) and
calls ``modelserver.kserve.ModelServer().start([model])`` with KServe's flags, for the ``kserve-*`` scenarios only.

    python kserve_echo_ours.py --http_port <port> --model_name echo --workers 1 --enable_grpc false

With one worker (KServe's default) the model runs in the server's own process, on a thread of its own: one process,
the frontend. Our ``ModelServer`` always serves with token authorization off and Prometheus metrics, the settings
the ``modelserver`` target gets from its config.properties.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import modelserver
from workers.kserve_compat import SHIM_DIR

from ..machine import version_of
from ..probes import child_env
from ..procs import Managed, Pinning
from ..scenarios import HANDLERS, Scenario
from .base import Log, Target
from .kserve import start_script, unsupported_unless_kserve

LAUNCHER = HANDLERS / "kserve_echo_ours.py"


def kserve_package() -> str:
    """Which ``kserve`` a KServe model file imports in this Python environment (our workers decide the same way):
    the real package, or our shim (not installed, or the shim's directory put first on ``PYTHONPATH``)."""
    spec = importlib.util.find_spec("kserve")
    if spec is None:
        return "our shim (workers/kserve_api): kserve is not installed"
    locations = [*(spec.submodule_search_locations or ()), spec.origin or ""]
    if any(location and Path(location).resolve().is_relative_to(SHIM_DIR) for location in locations):
        return "our shim (workers/kserve_api), first on the import path"
    return f"the real kserve {version_of('kserve')}"


class ModelServerScriptPeer:
    name = "modelserver-script"

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        return {
            "version": modelserver.__version__,
            "python": sys.executable,
            "script": f"{LAUNCHER.name} -> {LAUNCHER.parent.name}/kserve_echo.py",
            "kserve": kserve_package(),
        }

    def unsupported(self, scenario: Scenario) -> str | None:
        return unsupported_unless_kserve(scenario)

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        env = child_env(workdir)
        return start_script(self.name, sys.executable, LAUNCHER, scenario, workdir, pinning, started, env)
