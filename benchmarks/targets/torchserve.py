"""TorchServe 0.12.0 as a benchmark target: the real Java frontend and Python worker, installed into their own
virtual environment under the run's cache, serving the scenario's handler archived with the venv's own
``torch-model-archiver`` (the digits example is unpacked and re-archived), one worker, the scenario's batching.

TorchServe's processes: ``torchserve --start --foreground`` is a Python launcher that spawns the JVM (the frontend,
main class ``org.pytorch.serve.ModelServer``) and waits for it; the JVM spawns the worker with the launcher's own
Python (``--python sys.executable``, here the venv's). On SIGTERM the launcher dies at once and leaves the JVM
running, so the JVM and the worker both go into ``known_children`` for :meth:`Managed.stop`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from ..probes import effective_batching, ready_worker_pid, wait_for_answer
from ..procs import HOST, Managed, Pinning, descendants, free_port, proc_start_ticks, rss_mb, spawn
from ..scenarios import FRONTENDS_ONLY_OURS, STREAM_CHUNKS, Scenario
from .base import METRICS_MODE_ONLY_OURS, Log, Target, Unavailable

TORCHSERVE_VERSION = "0.12.0"
TORCH_VERSION = "2.13.0"
"""Always pinned: this release is a CPU build on local disk; an unpinned torch pulls a multi-GB CUDA build."""
REQUIREMENTS = (
    f"torch=={TORCH_VERSION}",
    f"torchserve=={TORCHSERVE_VERSION}",
    f"torch-model-archiver=={TORCHSERVE_VERSION}",
    # what TorchServe's worker and the digits handler import
    "pillow",
    "numpy",
    "psutil",
    "packaging",
    "pyyaml",
    "wheel",
)
MIN_JAVA = 11
MODEL_VERSION = "1.0"
RESPONSE_TIMEOUT_S = 120
JVM_MAIN_CLASS = "org.pytorch.serve.ModelServer"
PIP_TIMEOUT_S = 1800.0
ARCHIVER_TIMEOUT_S = 120.0
MAX_TEMP_CHARS = 64
"""The JVM puts the worker's Unix socket (``.ts.sock.9000``) in its temp directory; a socket path has at most 107
bytes."""
MANIFEST = "MAR-INF/MANIFEST.json"
ARCHIVE_ROLES = {"handler": "--handler", "modelFile": "--model-file", "serializedFile": "--serialized-file"}
ARCHIVE_ROLES |= {"configFile": "--config-file"}
"""Manifest keys of a .mar and the ``torch-model-archiver`` option for each file they name."""
VERSIONS_CODE = (
    "import importlib.metadata as m, ts, model_archiver, torch; "
    "print(m.version('torchserve'), m.version('torch-model-archiver'), m.version('torch'))"
)


def java_version(output: str) -> tuple[str, int]:
    """The first line of ``java -version`` and the major version it names (``1.8.0_292`` is 8, ``17.0.15`` 17)."""
    line = output.strip().splitlines()[0] if output.strip() else ""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', line)
    if found is None:
        raise ValueError(f"no version in {line!r}")
    major = int(found.group(1))
    return line, int(found.group(2) or 0) if major == 1 else major


def archiver_args(manifest: dict[str, Any], unpacked: Path) -> list[str]:
    """``torch-model-archiver`` options that re-archive an unpacked .mar: its model name and version, the files its
    manifest names, and every other file as ``--extra-files``."""
    model = manifest["model"]
    args = ["--model-name", model["modelName"], "--version", str(model.get("modelVersion", MODEL_VERSION))]
    named: set[str] = set()
    for key, option in ARCHIVE_ROLES.items():
        if model.get(key):
            args += [option, str(unpacked / model[key])]
            named.add(model[key])
    files = sorted(p for p in unpacked.rglob("*") if p.is_file() and p.relative_to(unpacked).parts[0] != "MAR-INF")
    extra = [str(p) for p in files if p.relative_to(unpacked).as_posix() not in named]
    return args + (["--extra-files", ",".join(extra)] if extra else [])


def config_properties(scenario: Scenario, model: str, version: str, store: Path, addresses: dict[str, str]) -> str:
    """TorchServe's defaults but for the addresses, the model, token authorization off, and one worker with the
    scenario's batching (a ``model-config.yaml`` inside the archive takes precedence, as in TorchServe)."""
    settings = {
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": scenario.batch_size,
        "maxBatchDelay": scenario.max_batch_delay_ms,
        "responseTimeout": RESPONSE_TIMEOUT_S,
    }
    properties = {
        "inference_address": addresses["inference"],
        "management_address": addresses["management"],
        "metrics_address": addresses["metrics"],
        "model_store": str(store),
        "load_models": f"{model}={model}.mar",
        "default_workers_per_model": "1",
        "disable_token_authorization": "true",
        "install_py_dep_per_model": "false",
        "models": json.dumps({model: {version: settings}}),
    }
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def stream_body(payload: bytes) -> bool:
    """The stream handler's answer, all pieces concatenated: one line per piece."""
    return len(payload.splitlines()) == STREAM_CHUNKS


def temp_dir(workdir: Path) -> Path | None:
    """The JVM's temp directory (it unpacks models and makes the worker's socket there): in the work directory when
    its path is short enough for a socket, else None for the JVM's default (/tmp)."""
    inside = workdir / "tmp"
    if len(str(inside)) > MAX_TEMP_CHARS:
        return None
    inside.mkdir(parents=True, exist_ok=True)
    return inside


def cmdline_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def is_jvm(cmdline: list[str]) -> bool:
    return bool(cmdline) and Path(cmdline[0]).name == "java" and JVM_MAIN_CLASS in cmdline


def run(command: list[str], timeout: float) -> str:
    """Run ``command``; its output, or :class:`Unavailable` with the tail of it."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"`{' '.join(command)}`: {err}") from err
    if done.returncode != 0:
        raise Unavailable(f"`{' '.join(command)}` failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout + done.stderr


class TorchServePeer:
    name = "torchserve"

    def __init__(self) -> None:
        self.venv: Path | None = None

    def prepare(self, cache: Path, log: Log) -> dict[str, Any]:
        java_line = self._check_java()
        venv = cache / "torchserve-venv"
        python = venv / "bin" / "python"
        versions = self._installed(python)
        if versions is None or versions[:2] != (TORCHSERVE_VERSION, TORCHSERVE_VERSION):
            log(f"installing torchserve=={TORCHSERVE_VERSION} (torch=={TORCH_VERSION}) into {venv}")
            run([sys.executable, "-m", "venv", "--clear", str(venv)], PIP_TIMEOUT_S)
            run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *REQUIREMENTS], PIP_TIMEOUT_S)
            versions = self._installed(python)
            if versions is None or versions[:2] != (TORCHSERVE_VERSION, TORCHSERVE_VERSION):
                raise Unavailable(f"torchserve=={TORCHSERVE_VERSION} is not importable in {venv} after pip install")
        self.venv = venv
        facts = dict(zip(("torchserve", "torch_model_archiver", "torch"), versions, strict=True))
        return {**facts, "java": java_line, "venv": str(venv)}

    @staticmethod
    def _check_java() -> str:
        """The ``java -version`` line of the java TorchServe's launcher runs (``$JAVA_HOME/bin/java`` or PATH's)."""
        java_home = os.environ.get("JAVA_HOME")
        java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
        if java is None:
            raise Unavailable("Java 11+ not found: no java on PATH (TorchServe's frontend is a JVM)")
        try:
            done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
            line, major = java_version(done.stderr or done.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError) as err:
            raise Unavailable(f"Java 11+ not found: `{java} -version`: {err}") from err
        if major < MIN_JAVA:
            raise Unavailable(f"Java 11+ not found: {java} is {line!r}")
        return line

    @staticmethod
    def _installed(python: Path) -> tuple[str, str, str] | None:
        """The torchserve, torch-model-archiver and torch versions importable by ``python``, or None."""
        if not python.is_file():
            return None
        try:
            done = subprocess.run([str(python), "-c", VERSIONS_CODE], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = done.stdout.split()
        return (found[0], found[1], found[2]) if done.returncode == 0 and len(found) == 3 else None

    def unsupported(self, scenario: Scenario) -> str | None:
        if scenario.is_kserve or scenario.is_grpc:
            return "the kserve-* and grpc-* scenarios compare with KServe only"
        if scenario.metrics_mode != "prometheus":
            return METRICS_MODE_ONLY_OURS
        if scenario.frontend_processes:
            return FRONTENDS_ONLY_OURS
        if scenario.protocol_path is not None:
            return "MindSpore's and Angel's APIs: compared with this server's echo-json of the same body size"
        archive = scenario.handler_spec.archive
        if archive is not None and not archive.is_file():
            return f"{archive.name} is missing: run `python -m examples` first"
        return None

    def build_store(self, scenario: Scenario, store: Path, workdir: Path) -> tuple[str, str]:
        """Archive the scenario's handler (or re-archive the unpacked digits.mar) into ``store`` with the venv's
        ``torch-model-archiver``; returns the model's name and version."""
        assert self.venv is not None
        spec = scenario.handler_spec
        store.mkdir(parents=True, exist_ok=True)
        if spec.archive is not None:
            if not spec.archive.is_file():
                raise Unavailable(f"{spec.archive} is missing: run `python -m examples` first")
            unpacked = workdir / "unpacked"
            with zipfile.ZipFile(spec.archive) as mar:
                mar.extractall(unpacked)
                manifest = json.loads(mar.read(MANIFEST))
            args = archiver_args(manifest, unpacked)
            name, version = manifest["model"]["modelName"], str(manifest["model"].get("modelVersion", MODEL_VERSION))
        else:
            assert spec.handler_file is not None
            args = ["--model-name", spec.name, "--version", MODEL_VERSION, "--handler", str(spec.handler_file)]
            name, version = spec.name, MODEL_VERSION
        command = [str(self.venv / "bin" / "torch-model-archiver"), *args, "--export-path", str(store), "--force"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=ARCHIVER_TIMEOUT_S)
        if done.returncode != 0 or not (store / f"{name}.mar").is_file():
            raise RuntimeError(f"torch-model-archiver failed for {name}:\n{done.stdout}{done.stderr}")
        return name, version

    def start(self, scenario: Scenario, workdir: Path, pinning: Pinning, started: list[Managed], log: Log) -> Target:
        if self.venv is None:
            raise RuntimeError("TorchServePeer.start before prepare")
        store = workdir / "model_store"
        model, version = self.build_store(scenario, store, workdir)
        addresses = {key: f"http://{HOST}:{free_port()}" for key in ("inference", "management", "metrics")}
        config = workdir / "config.properties"
        config.write_text(config_properties(scenario, model, version, store, addresses))
        temp = temp_dir(workdir)
        bin_dir = self.venv / "bin"
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(self.venv)}
        # TMPDIR: the launcher's pid file (else a TorchServe elsewhere blocks it); TEMP: the JVM's java.io.tmpdir
        env |= {"TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"} | ({"TEMP": str(temp)} if temp else {})
        command = [*pinning.server_prefix, str(bin_dir / "torchserve"), "--start", "--foreground", "--ncs"]
        command += ["--disable-token-auth", "--ts-config", str(config), "--model-store", str(store)]
        managed = spawn("torchserve", command, workdir, env)
        started.append(managed)
        url = f"{addresses['inference']}/predictions/{model}"
        check = scenario.check or (stream_body if scenario.kind == "stream" else None)
        start_s = wait_for_answer(managed, url, scenario.body(), scenario.content_type, check)
        jvm = self._jvm_pid(managed)
        worker = ready_worker_pid(addresses["management"], model)
        managed.known_children.extend((pid, proc_start_ticks(pid) or 0) for pid in (jvm, worker))
        worker_python = cmdline_of(worker)[:1]
        if worker_python != [str(bin_dir / "python")]:
            raise RuntimeError(f"TorchServe's worker {worker} runs {worker_python}, not {bin_dir / 'python'}")
        pids = {"frontend": jvm, "worker": worker}
        extra = {
            "rss_idle_mb": {role: rss_mb(pid) for role, pid in pids.items()},
            "launcher": {"pid": managed.pid, "rss_idle_mb": rss_mb(managed.pid)},
            "batching": effective_batching(addresses["management"], model),
            "config": str(config),
            "command": command,
        }
        return Target(self.name, url, pids, managed.log, start_s=round(start_s, 3), extra=extra)

    @staticmethod
    def _jvm_pid(managed: Managed) -> int:
        """The JVM: the launcher itself if it ever were, else the one java ``ModelServer`` among its descendants."""
        if is_jvm(cmdline_of(managed.pid)):
            return managed.pid
        jvms = [pid for pid, _ in descendants(managed.pid) if is_jvm(cmdline_of(pid))]
        if len(jvms) != 1:
            raise RuntimeError(f"expected one TorchServe JVM under {managed.pid}, found {jvms}")
        return jvms[0]
