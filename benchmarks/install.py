"""What the runner installs when it is missing, so that one command works on a fresh machine: the server's bytecode
(as the README's set-up writes it), matplotlib (the ``bench`` extra) and the example models' training packages (the
``examples`` extra) into the current Python environment with pip, and wrk and h2load (the gRPC scenarios' load
generator) with apt-get when running as root. Each returns None when the thing is there, or the reason it is not;
nothing here raises for a failed install."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .scenarios import HANDLER_FILES
from .targets.base import Log

ROOT = Path(__file__).resolve().parent.parent
BENCH_REQUIREMENTS = ("matplotlib==3.11.2",)
"""Keep equal to the ``bench`` extra in setup.cfg (a unit test checks)."""
EXAMPLES_MODULES = ("torch", "sklearn", "PIL")
PIP_TIMEOUT_S = 1800.0
APT_TIMEOUT_S = 300.0
EXAMPLES_TIMEOUT_S = 600.0


def missing_modules(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def _run(command: list[str], timeout: float, log: Log, env: dict[str, str] | None = None) -> str | None:
    """Run ``command`` in the checkout; None on success, else a one-line reason."""
    log(f"  $ {' '.join(command)}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{command[0]}: {err}"
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"`{' '.join(command)}` failed ({done.returncode}): {last[0]}"
    return None


def pip_install(requirements: list[str], log: Log) -> str | None:
    failure = _run([sys.executable, "-m", "pip", "install", *requirements], PIP_TIMEOUT_S, log)
    importlib.invalidate_caches()
    return failure


def compile_server(log: Log) -> str | None:
    """Compile the server's modules, as the README's set-up does (``python -m modelserver.compile``): their
    bytecode (a start measured without it, where ``PYTHONDONTWRITEBYTECODE`` is set, would time the compilation of
    every module too) and the hot path's mypyc build. Both are kept, so a second run costs nothing."""
    return _run([sys.executable, "-m", "modelserver.compile", "--require"], PIP_TIMEOUT_S, log)


def ensure_matplotlib(log: Log) -> str | None:
    if not missing_modules(("matplotlib",)):
        return None
    log(f"matplotlib is missing: installing the bench extra ({', '.join(BENCH_REQUIREMENTS)}) with pip")
    failure = pip_install(list(BENCH_REQUIREMENTS), log)
    if failure is None and missing_modules(("matplotlib",)):
        failure = "matplotlib is still not importable after pip install"
    return failure


def ensure_wrk(log: Log) -> str | None:
    """wrk on PATH, installed with ``apt-get install -y wrk`` if we are root and apt-get exists."""
    return apt_install("wrk", "wrk", log)


H2LOAD_PACKAGE = "nghttp2-client"
H2LOAD_VERSION = "1.52.0-1+deb12u3"
"""The Debian package of h2load, the gRPC scenarios' load generator, and the version installed (Debian 12's)."""


def ensure_h2load(log: Log) -> str | None:
    """h2load on PATH, installed with ``apt-get install -y nghttp2-client=<H2LOAD_VERSION>`` if we are root and
    apt-get exists. A Debian point release may drop that exact version: then the release's own is installed, and the
    report names the version that ran (``h2load --version``)."""
    reason = apt_install("h2load", f"{H2LOAD_PACKAGE}={H2LOAD_VERSION}", log)
    if reason is not None and shutil.which("apt-get") is not None and os.geteuid() == 0:
        log(f"{H2LOAD_PACKAGE}={H2LOAD_VERSION} could not be installed ({reason}): trying the release's version")
        reason = apt_install("h2load", H2LOAD_PACKAGE, log)
    return reason


def apt_install(binary: str, package: str, log: Log) -> str | None:
    """``binary`` on PATH, else ``apt-get install -y package`` (after an ``apt-get update`` if the first try fails)
    when we are root and apt-get exists; None when it is there, else the reason it is not."""
    if shutil.which(binary):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{binary} is not installed (and apt-get as root is not available to install it)"
    log(f"{binary} is missing: installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", package]
    failure = _run(command, APT_TIMEOUT_S, log, env)
    if failure is not None:  # the package lists may be missing on a fresh image
        failure = _run(["apt-get", "update"], APT_TIMEOUT_S, log, env) or _run(command, APT_TIMEOUT_S, log, env)
    if failure is None and not shutil.which(binary):
        failure = f"apt-get installed {package} but {binary} is not on PATH"
    return failure


def ensure_digits_archive(log: Log) -> str | None:
    """``examples/model_store/digits.mar``, built by ``python -m examples`` (installing the ``examples`` extra
    first when torch, scikit-learn or Pillow is missing). The runner also needs scikit-learn and Pillow itself,
    for the request body."""
    archive = HANDLER_FILES["digits"].archive
    assert archive is not None
    missing = missing_modules(EXAMPLES_MODULES)
    if missing:
        log(f"digits needs {', '.join(missing)}: installing the examples extra with pip (torch is large)")
        failure = pip_install(["-e", f"{ROOT}[examples]"], log)
        if failure is not None:
            return f"could not install the examples extra: {failure}"
        if missing_modules(EXAMPLES_MODULES):
            return f"{', '.join(missing_modules(EXAMPLES_MODULES))} still missing after installing the examples extra"
    if archive.is_file():
        return None
    log(f"{archive} is missing: building the examples with `python -m examples`")
    failure = _run([sys.executable, "-m", "examples"], EXAMPLES_TIMEOUT_S, log)
    if failure is None and not archive.is_file():
        failure = f"`python -m examples` did not write {archive}"
    return failure
