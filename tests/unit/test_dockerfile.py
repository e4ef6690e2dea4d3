"""The Dockerfile read without a container engine: variants, torch pins, user, what the build context holds, and
the image's own config.properties (the image itself is built and run by tests/e2e/test_image.py where an engine
exists)."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

from modelserver.config import CliOptions, load_config
from modelserver.container import DEFAULT_CONFIG, server_args
from tests.server import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    )
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def stages() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in instructions():
        if instruction == "FROM":
            words = args.split()
            current = found.setdefault(words[-1] if "AS" in (w.upper() for w in words) else words[0], [])
        current.append((instruction, args))
    return found


def test_the_variant_chooses_the_torch_stage_and_cpu_is_the_default() -> None:
    found = stages()
    assert "ARG VARIANT=cpu" in DOCKERFILE.split("\nFROM", 1)[0]
    assert ("FROM", "torch-${VARIANT} AS build") in found["build"]
    assert {"torch-cpu", "torch-cuda"} <= set(found)
    assert list(found)[-1] == "runtime"


def test_torch_is_pinned_and_the_cpu_stage_refuses_cuda() -> None:
    found = stages()
    cpu = " ".join(args for instruction, args in found["torch-cpu"] if instruction == "RUN")
    cuda = " ".join(args for instruction, args in found["torch-cuda"] if instruction == "RUN")
    for run in (cpu, cuda):
        assert re.findall(r"torch==[\d.]+", run) == ["torch==2.13.0"]
    assert '--index-url "${TORCH_CPU_INDEX}"' in cpu and "ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu" in {
        f"{i} {a}" for i, a in found["torch-cpu"]
    }
    assert "torch.version.cuda" in cpu and "nvidia" in cpu  # the build fails on a CUDA torch or nvidia wheels
    build = " ".join(args for instruction, args in found["build"] if instruction == "RUN")
    assert "torch" not in re.sub(r"python -c \"[^\"]*\"", "", build).replace("torch-", "")  # nothing reinstalls it


def test_the_runtime_stage_runs_unprivileged_in_the_foreground() -> None:
    runtime = stages()["runtime"]
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users == ["1000:1000"]
    [entrypoint] = [args for instruction, args in runtime if instruction == "ENTRYPOINT"]
    [cmd] = [args for instruction, args in runtime if instruction == "CMD"]
    assert entrypoint == '["python", "-m", "modelserver.container"]'
    args = server_args(shlex.split(cmd.strip("[]").replace(",", " ")))
    assert args == ["--start", "--ts-config", DEFAULT_CONFIG, "--foreground"]
    copies = [args for instruction, args in runtime if instruction == "COPY"]
    assert f"--chown=1000:1000 docker/config.properties {DEFAULT_CONFIG}" in copies
    assert not [args for instruction, args in runtime if instruction == "RUN" and "pip install" in args]


def context_files() -> set[str]:
    """The repository files the build context holds, by .dockerignore's rules (last matching pattern wins)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    kept = set()
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT).as_posix()
        if not path.is_file() or relative.startswith((".git/", ".venv/")) or relative == ".git":
            continue
        included = True
        for negated, pattern in rules:
            bare = pattern.removeprefix("**/")
            parts = relative.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
            hit = hit or (pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts))
            if hit:
                included = negated
        if included:
            kept.add(relative)
    return kept


def test_the_context_holds_what_the_build_copies_and_nothing_else() -> None:
    kept = context_files()
    for instruction, args in instructions():
        if instruction == "COPY" and "--from=" not in args:
            sources = [word for word in args.split()[:-1] if not word.startswith("--")]
            for source in sources:
                assert any(name == source or name.startswith(f"{source}/") for name in kept), source
    assert "modelserver/container.py" in kept and "workers/ts_shim/ts/context.py" in kept
    assert not [name for name in kept if name.startswith(("tests/", "benchmarks/", "examples/", ".venv/"))]
    assert not [name for name in kept if "__pycache__" in name or name.endswith(".pyc")]


def test_the_image_config_binds_inference_everywhere_and_the_rest_to_localhost(tmp_path: Path) -> None:
    text = (ROOT / "docker" / "config.properties").read_text()
    (tmp_path / "store").mkdir()
    config = tmp_path / "config.properties"
    config.write_text(text.replace("/home/model-server/model-store", str(tmp_path / "store")))
    loaded = load_config(CliOptions(ts_config=str(config)), {}, cwd=str(tmp_path))
    assert (loaded.inference_address.host, loaded.inference_address.port) == ("0.0.0.0", 8080)
    assert (loaded.management_address.host, loaded.management_address.port) == ("127.0.0.1", 8081)
    assert (loaded.metrics_address.host, loaded.metrics_address.port) == ("127.0.0.1", 8082)
    assert not loaded.disable_token_authorization  # TorchServe's default; MODELSERVER_TOKEN sets the key
    exposed = {args for instruction, args in stages()["runtime"] if instruction == "EXPOSE"}
    assert exposed == {"8080 8081 8082"}
