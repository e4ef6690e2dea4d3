"""This server as a benchmark target: ``python -m modelserver`` from a generated config.properties, serving the
scenario's handler with one worker and the scenario's batching.

A handler file is archived with our ``model-archiver --archive-format no-archive`` into a directory model (the
handler and ``MAR-INF/MANIFEST.json``, like ``examples/model_store/echo``); a KServe model file gets a
``model-config.yaml`` with ``workerRuntime: kserve`` beside it. A ready archive (``digits.mar``) is copied into the
store as it is. The ``kserve-*`` scenarios go to the KServe routes (``/v1/models/echo:predict``,
``/v2/models/echo/infer``) of the same inference address, the ``grpc-*`` scenarios to the gRPC API on
``oip_grpc_address``, the MindSpore and Angel scenarios to theirs (an example servable archived with its own
model-config.yaml), every other scenario to ``/predictions/<model>``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import modelserver

from ..machine import version_of
from ..probes import START_TIMEOUT_S, child_env, effective_batching, get_json, ready_worker_pid, wait_for_scenario
from ..procs import HOST, Managed, Pinning, descendants, free_port, proc_start_ticks, rss_mb, spawn
from ..scenarios import Scenario
from .base import Log, Target, Unavailable

MODEL_VERSION = "1.0"
ARCHIVER_TIMEOUT_S = 120.0


def archive_version(archive: Path) -> str:
    """The model version in a .mar's manifest (the ``models`` setting is keyed by it)."""
    with zipfile.ZipFile(archive) as mar:
        return str(json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"])


def build_store(scenario: Scenario, store: Path) -> tuple[str, str, str]:
    """Put the scenario's model into ``store``; returns its name, version, and its entry in the store (what
    ``load_models`` names)."""
    spec = scenario.handler_spec
    store.mkdir(parents=True, exist_ok=True)
    if spec.archive is not None:
        if not spec.archive.is_file():
            raise Unavailable(f"{spec.archive} is missing (build it with `python -m examples`)")
        shutil.copy2(spec.archive, store / spec.archive.name)
        return spec.archive.stem, archive_version(spec.archive), spec.archive.name
    assert spec.handler_file is not None
    command = [sys.executable, "-m", "modelserver.model_archiver", "--model-name", spec.name]
    command += ["--version", MODEL_VERSION, "--handler", str(spec.handler_file), "--export-path", str(store)]
    command += ["--archive-format", "no-archive", "--force"]
    if spec.config_file is not None:
        command += ["--config-file", str(spec.config_file)]
    elif spec.worker_runtime != "torchserve":
        model_config = store.parent / f"{spec.name}-model-config.yaml"
        model_config.write_text(f"workerRuntime: {spec.worker_runtime}\n")
        command += ["--config-file", str(model_config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=ARCHIVER_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"model-archiver failed for {spec.name}:\n{done.stdout}{done.stderr}")
    return spec.name, MODEL_VERSION, spec.name


def config_properties(
    scenario: Scenario, model: str, version: str, entry: str, store: Path, addresses: dict[str, str]
) -> str:
    """Token authorization off and Prometheus metrics (unless the scenario names another mode), as the bundled
    config.properties; one worker and the scenario's batching for the model."""
    settings = {
        "minWorkers": scenario.workers,
        "maxWorkers": scenario.workers,
        "batchSize": scenario.batch_size,
        "maxBatchDelay": scenario.max_batch_delay_ms,
    }
    properties = {
        "inference_address": addresses["inference"],
        "management_address": addresses["management"],
        "metrics_address": addresses["metrics"],
        "model_store": str(store),
        "load_models": f"{model}={entry}",
        "default_workers_per_model": "1",
        "job_queue_size": "100",
        "disable_token_authorization": "true",
        "metrics_mode": scenario.metrics_mode,
        "models": json.dumps({model: {version: settings}}),
    }
    if scenario.frontend_processes:
        properties["frontend_processes"] = str(scenario.frontend_processes)
    if "oip_grpc" in addresses:  # the grpc-* scenarios: the Open Inference Protocol's gRPC API
        properties["oip_grpc_address"] = addresses["oip_grpc"]
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def frontend_pids(managed: Managed, addresses: dict[str, str], model: str, scenario: Scenario) -> dict[str, int]:
    """The processes of a ``frontends-*`` scenario once every worker is ready: ``frontend`` (one frontend), or
    ``supervisor`` and ``frontend 0``, ``frontend 1``, ...; and ``worker 0``, ``worker 1``, ..."""
    expected = scenario.frontend_processes if scenario.frontend_processes > 1 else 0  # one frontend: no supervisor
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        tree = [pid for pid, _ in descendants(managed.pid)]
        workers = sorted(pid for pid in tree if command_of(pid)[1:3] == ["-m", "workers"])
        frontends = sorted(pid for pid in tree if "modelserver.frontend" in command_of(pid))
        if len(workers) == scenario.workers and len(frontends) == expected and all_ready(addresses, model):
            roles = {"supervisor": managed.pid} if frontends else {"frontend": managed.pid}
            roles.update({f"frontend {index}": pid for index, pid in enumerate(frontends)})
            return {**roles, **{f"worker {index}": pid for index, pid in enumerate(workers)}}
        time.sleep(0.1)
    raise TimeoutError(f"{scenario.frontend_processes} frontend(s) with {scenario.workers} ready workers never came up")


def all_ready(addresses: dict[str, str], model: str) -> bool:
    """Every worker the answering frontend has is READY, and every frontend is ready (``/v2/health/ready``)."""
    try:
        workers = get_json(f"{addresses['management']}/models/{model}")[0]["workers"]
        return (
            all(w["status"] == "READY" for w in workers)
            and get_json(f"{addresses['inference']}/v2/health/ready")["ready"]
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


def command_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class ModelServerPeer:
    name = "modelserver"

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        from workers import compiled_modules

        from .modelserver_script import kserve_package

        return {
            "hot path": compiled_modules.describe(compiled_modules.check()[0]),
            "version": modelserver.__version__,
            "python": sys.executable,
            "aiohttp": version_of("aiohttp"),
            "kserve in workers": kserve_package(),
        }

    def unsupported(self, scenario: Scenario) -> str | None:
        return None

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        model, version, entry = build_store(scenario, workdir / "model_store")
        addresses = {key: f"http://{HOST}:{free_port()}" for key in ("inference", "management", "metrics")}
        if scenario.is_grpc:
            addresses["oip_grpc"] = f"http://{HOST}:{free_port()}"
        config = workdir / "config.properties"
        config.write_text(config_properties(scenario, model, version, entry, workdir / "model_store", addresses))
        command = [*pinning.server_prefix, sys.executable, "-m", "modelserver", "--start", "--foreground", "--ncs"]
        managed = spawn("modelserver", [*command, "--ts-config", str(config)], workdir, child_env(workdir))
        started.append(managed)
        if scenario.grpc_method is not None:
            url = f"{addresses['oip_grpc']}{scenario.grpc_method}"
        else:
            path = scenario.kserve_path or scenario.protocol_path or f"/predictions/{model}"
            url = f"{addresses['inference']}{path}"
        start_s = wait_for_scenario(managed, url, scenario)
        if scenario.frontend_processes:
            pids = frontend_pids(managed, addresses, model, scenario)
        else:
            worker = ready_worker_pid(addresses["management"], model)
            pids = {"frontend": managed.pid, "worker": worker}
        managed.known_children += [(pid, proc_start_ticks(pid) or 0) for pid in pids.values() if pid != managed.pid]
        extra = {
            "rss_idle_mb": {role: rss_mb(pid) for role, pid in pids.items()},
            "batching": effective_batching(addresses["management"], model),
        }
        return Target(self.name, url, pids, managed.log, start_s=round(start_s, 3), extra=extra)
