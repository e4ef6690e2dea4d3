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
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator

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


class BuildFailed(Exception):
    """The build did not finish; the message ends with the last lines mypyc and the compiler wrote."""


@contextlib.contextmanager
def output_to(path: str) -> Iterator[None]:
    """This process's stdout and stderr, the C compiler's included (it writes to the descriptors), into a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def compile_group(root: str, destination: str, jobs: int) -> None:
    """mypyc's C for the group, built by setuptools into ``destination`` (a temporary directory first, moved in
    whole, so a build cut short is never taken for a build). What mypyc and the compiler print (a line per
    command, mypyc's notes) is shown only when the build fails."""
    work = tempfile.mkdtemp(prefix="modelserver-mypyc-")
    log = os.path.join(work, "build.log")
    try:
        with output_to(log):
            try:
                _build(root, work, jobs)
            except (Exception, SystemExit) as error:  # setuptools reports a compiler's failure as SystemExit
                failure: BaseException | None = error
            else:
                failure = None
        if failure is not None:
            with open(log, errors="replace") as written:
                tail = "".join(written.readlines()[-20:])
            raise BuildFailed(f"{failure}\n{tail}") from failure
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.move(os.path.join(work, "lib"), destination)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build(root: str, work: str, jobs: int) -> None:
    from mypyc.build import mypycify  # imported here: mypy is needed to build, never to serve
    from setuptools import setup

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
    finally:
        os.chdir(previous)


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
    except (BuildFailed, OSError, ImportError) as error:
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
