"""Which build of the hot path a process uses (workers/compiled_modules.py): a build is used only while it matches
every source of the group exactly; otherwise, or when switched off, the modules run as Python.

Each case runs in a fresh interpreter: the finder is installed once per process, when ``modelserver`` or
``workers`` is first imported."""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from workers import compiled_modules
from workers.compiled_modules import (
    COMPILED_MODULES,
    _extension_files,
    build_directory,
    package_root,
    source_digest,
    source_path,
)

ROOT = Path(package_root())
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
PROBE = (
    "import json, sys, modelserver.http_connection as m, modelserver.types as t, workers.compiled_modules as c;"
    "print(json.dumps({'status': c.status, 'files': [m.__file__, t.__file__], 'line': c.describe()}))"
)


def probe(root: Path, **env: str) -> dict[str, object]:
    environment = {key: value for key, value in os.environ.items() if key != compiled_modules.ENVIRONMENT_SWITCH}
    environment.update(PYTHONPATH=str(root), **env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def copy_tree(destination: Path) -> Path:
    for package in ("modelserver", "workers"):
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def built() -> bool:
    return os.path.isdir(build_directory())


def test_digest_names_the_sources_exactly(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    before = source_digest(root=str(tree))
    assert before == source_digest(root=str(ROOT))
    target = tree / "modelserver" / "batcher.py"
    target.write_bytes(target.read_bytes() + b"\n")
    assert source_digest(root=str(tree)) != before
    assert source_digest(COMPILED_MODULES[:-1], root=str(ROOT)) != before  # the list is part of it too


def test_extension_files_are_named_by_their_packages(tmp_path: Path) -> None:
    (tmp_path / "modelserver" / "metrics").mkdir(parents=True)
    for name in ("modelserver__mypyc", "modelserver/batcher", "modelserver/metrics/series"):
        (tmp_path / f"{name}{SUFFIX}").write_bytes(b"")
    (tmp_path / "modelserver" / "notes.txt").write_text("not a module")
    found = _extension_files(str(tmp_path))
    assert found == {
        "modelserver__mypyc": str(tmp_path / f"modelserver__mypyc{SUFFIX}"),
        "modelserver.batcher": str(tmp_path / "modelserver" / f"batcher{SUFFIX}"),
        "modelserver.metrics.series": str(tmp_path / "modelserver" / "metrics" / f"series{SUFFIX}"),
    }


def test_without_a_build_every_module_is_python(tmp_path: Path) -> None:
    result = probe(ROOT, MODELSERVER_COMPILED_DIR=str(tmp_path / "none"))
    assert result["status"] == "not built"
    assert all(str(path).endswith(".py") for path in result["files"])
    assert "python -m modelserver.compile" in str(result["line"])


@pytest.mark.skipif(not built(), reason="no build of these sources (python -m modelserver.compile)")
def test_a_build_of_these_sources_is_used() -> None:
    result = probe(ROOT)
    assert result["status"] == "compiled"
    assert all(str(path).endswith(SUFFIX) for path in result["files"])


@pytest.mark.skipif(not built(), reason="no build of these sources (python -m modelserver.compile)")
def test_switched_off_the_sources_run() -> None:
    result = probe(ROOT, MODELSERVER_COMPILED="0")
    assert result["status"] == "off"
    assert all(str(path).endswith(".py") for path in result["files"])


@pytest.mark.skipif(not built(), reason="no build of these sources (python -m modelserver.compile)")
def test_an_edited_source_is_run_as_python_not_the_older_build(tmp_path: Path) -> None:
    """The build of the unedited sources stays beside it, and must not be taken for this tree."""
    tree = copy_tree(tmp_path / "tree")
    edited = tree / "modelserver" / "types.py"
    edited.write_text(edited.read_text() + "\nEDITED = True\n")
    result = probe(tree, MODELSERVER_COMPILED_DIR=os.path.dirname(build_directory()))
    assert result["status"] == "stale"
    assert result["files"] == [str(tree / "modelserver" / "http_connection.py"), str(edited)]
    assert "older than their sources" in str(result["line"])


@pytest.mark.parametrize("switch", ["1", "0"])
def test_the_server_says_how_its_hot_path_runs_and_answers_either_way(tmp_path: Path, switch: str) -> None:
    from tests.server import EXAMPLE_MODELS, start_server

    env = {compiled_modules.ENVIRONMENT_SWITCH: switch}  # "1", or anything but an off word: a build is used
    server = start_server(tmp_path, {"echo": EXAMPLE_MODELS / "echo"}, env=env, wait_models=["echo"])
    try:
        answer = requests.post(f"{server.inference}/predictions/echo", json={"a": 1}, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"a": 1}
        expected = "Hot path: Python (MODELSERVER_COMPILED=0)" if switch == "0" else f"Hot path: {_expected_line()}"
        assert expected in server.logs()
    finally:
        server.stop()


def _expected_line() -> str:
    return "compiled (mypyc)" if built() else "Python: "


# -- what the group's sources must keep to, so that compiled and Python behave alike ----------------------------


def _group_trees() -> dict[str, ast.Module]:
    return {module: ast.parse(Path(source_path(module)).read_text()) for module in COMPILED_MODULES}


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def test_python_classes_extend_only_group_classes_that_allow_it() -> None:
    """mypyc refuses, at run time, a Python subclass of a compiled class not marked for it."""
    allowed, native = set(), set()
    for tree in _group_trees().values():
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and "Protocol" not in {_name(base) for base in node.bases}:
                native.add(node.name)
                if any("allow_interpreted_subclasses" in ast.unparse(decorator) for decorator in node.decorator_list):
                    allowed.add(node.name)
    offenders = []
    for path in [
        *ROOT.joinpath("modelserver").rglob("*.py"),
        *ROOT.joinpath("workers").rglob("*.py"),
        *ROOT.joinpath("tests").rglob("*.py"),
    ]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module in COMPILED_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    name = _name(base)
                    if name in native and name not in allowed:
                        offenders.append(f"{module}.{node.name}({name})")
    assert offenders == []


def test_a_raise_from_sets_its_cause_itself() -> None:
    """mypyc compiles ``raise error from cause`` without the cause (and ``from None`` without suppressing the
    context): each is preceded by the assignment that does it."""
    offenders = []
    for module, tree in _group_trees().items():
        for node in ast.walk(tree):  # every block: a function's, a try's, an except's, a loop's...
            statements = getattr(node, "body", None)
            if not isinstance(statements, list):
                continue
            for before, statement in zip([None, *statements], statements, strict=False):
                if isinstance(statement, ast.Raise) and statement.cause is not None:
                    attribute = "__suppress_context__" if ast.unparse(statement.cause) == "None" else "__cause__"
                    if before is None or f".{attribute} = " not in ast.unparse(before):
                        offenders.append(f"{module}:{statement.lineno}")
    assert offenders == []


def test_the_group_reads_no_docstrings() -> None:
    """A compiled module's ``__doc__`` is None."""
    assert [module for module, tree in _group_trees().items() if "__doc__" in ast.unparse(tree)] == []


def test_class_attributes_of_the_group_are_class_vars() -> None:
    """Compiled, a class-level value without ``ClassVar`` is an instance default fixed at build: neither a later
    assignment to the class (a configured limit) nor a Python subclass's own value would be seen."""
    offenders = []
    for module, tree in _group_trees().items():
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.Assign) and not all(
                        isinstance(target, ast.Name) and target.id.startswith("__") for target in item.targets
                    ):
                        offenders.append(f"{module}.{node.name}: {ast.unparse(item)}")
    assert offenders == []


def test_final_tuples_another_module_imports_are_of_any_length() -> None:
    """A ``Final`` tuple of fixed length is a C struct in its module; another compiled module that imported it read
    "value for final name ... was not set" at run time (``LATENCY_BUCKETS``). Declared ``tuple[X, ...]``, it is an
    object like any other ``Final``."""
    fixed: dict[str, str] = {}
    for module, tree in _group_trees().items():
        for node in tree.body:
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and ast.unparse(node.annotation) == "Final"
                and isinstance(node.value, ast.Tuple)
            ):
                fixed[node.target.id] = module
    offenders = []
    for module, tree in _group_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                offenders += [
                    f"{module} imports {alias.name}" for alias in node.names if fixed.get(alias.name, module) != module
                ]
    assert offenders == []


def test_a_failed_build_says_so_and_leaves_no_build(tmp_path: Path) -> None:
    """No working C compiler: one message with the compiler's last words, no build directory (so the server runs
    as Python), exit 1 only under ``--require``."""
    environment = {**os.environ, "CC": "/bin/false", "MODELSERVER_COMPILED_DIR": str(tmp_path / "builds")}
    done = subprocess.run(
        [sys.executable, "-m", "modelserver.compile", "--require"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("modelserver.compile: mypyc build failed, the server runs as Python:")
    assert "/bin/false" in done.stderr
    assert not (tmp_path / "builds").exists()
