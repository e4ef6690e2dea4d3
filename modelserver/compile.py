"""``python -m modelserver.compile``: byte-compile every module, then compile the hot path's modules with mypyc.

The hot path (HTTP parsing callbacks to the worker socket and back) is spread over some hundred small functions;
compiled to C, the frontend's instructions per request fall by about a third (docs/architecture.md#compiled-modules).
The modules stay plain Python that runs as it is: a build is only used while it matches the sources
(workers/compiled_modules.py), so a build that fails, or a machine without a C compiler, leaves a slower server,
never a broken one. ``--require`` makes a failed build an error (CI).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import sys
import tempfile
import time

from workers.compiled_modules import (
    COMPILED_MODULES,
    build_directory,
    compiled_root,
    package_root,
    source_digest,
    source_path,
)

MYPY_OPTIONS = (
    "--ignore-missing-imports",
    "--follow-imports=silent",
    "--python-version=3.11",
)


def byte_compile(root: str) -> bool:
    """The packages' bytecode, written once (a machine with PYTHONDONTWRITEBYTECODE set compiled them at every
    start)."""
    return all(
        compileall.compile_dir(os.path.join(root, package), quiet=1, force=False)
        for package in ("modelserver", "workers")
    )


def compile_group(root: str, destination: str, jobs: int) -> None:
    """mypyc's C for the group, built by setuptools into ``destination`` (a temporary directory first, moved in
    whole, so a build cut short is never taken for a build)."""
    from mypyc.build import mypycify  # imported here: mypy is needed to build, never to serve
    from setuptools import setup

    work = tempfile.mkdtemp(prefix="modelserver-mypyc-")
    previous = os.getcwd()
    try:
        os.chdir(work)  # not the project's directory: setuptools would read its setup.cfg
        paths = [source_path(module, root) for module in COMPILED_MODULES]
        extensions = mypycify(
            [*MYPY_OPTIONS, *paths], opt_level="3", target_dir=os.path.join(work, "c"), group_name="modelserver"
        )
        staging = os.path.join(work, "lib")
        setup(
            name="modelserver-compiled",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                staging,
                "--build-temp",
                os.path.join(work, "temp"),
                f"--parallel={jobs}",
            ],
        )
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.move(staging, destination)
    finally:
        os.chdir(previous)
        shutil.rmtree(work, ignore_errors=True)


KEPT_BUILDS = 4
"""Builds kept beside the new one: checkouts that share an environment (a worktree each) keep theirs."""


def remove_old_builds(keep: str) -> None:
    """The oldest builds beyond :data:`KEPT_BUILDS`: their sources are mostly gone for good."""
    others = [entry for entry in os.scandir(compiled_root()) if entry.is_dir() and entry.path != keep]
    others.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    for entry in others[KEPT_BUILDS:]:
        shutil.rmtree(entry.path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelserver.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--python-only", action="store_true", help="byte-compile only; no mypyc build")
    parser.add_argument("--require", action="store_true", help="exit 1 when the mypyc build fails (CI)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="C compilers run at once")
    args = parser.parse_args(argv)
    root = package_root()
    if not byte_compile(root):
        print("modelserver.compile: some modules could not be byte-compiled", file=sys.stderr)
        return 1
    if args.python_only:
        return 0
    destination = build_directory(source_digest(root=root))
    if os.path.isdir(destination):
        print(f"modelserver.compile: the hot-path modules are compiled already ({destination})")
        return 0
    started = time.monotonic()
    try:
        compile_group(root, destination, args.jobs)
    except (Exception, SystemExit) as error:  # setuptools reports a compiler's failure as SystemExit
        print(f"modelserver.compile: mypyc build failed, the server runs as Python: {error}", file=sys.stderr)
        return 1 if args.require else 0
    remove_old_builds(destination)
    print(
        f"modelserver.compile: {len(COMPILED_MODULES)} hot-path modules compiled in "
        f"{time.monotonic() - started:.0f} s ({destination})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
