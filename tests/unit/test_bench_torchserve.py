"""The TorchServe benchmark target's pure logic: reading ``java -version``, the config.properties it writes, how the
digits archive is re-archived, and how the JVM is told apart from the launcher."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.scenarios import SCENARIOS, SCENARIOS_BY_NAME, Handler
from benchmarks.targets.torchserve import (
    MAX_TEMP_CHARS,
    TorchServePeer,
    archiver_args,
    config_properties,
    is_jvm,
    java_version,
    stream_body,
    temp_dir,
)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6)\n', 17),
        ('java version "1.8.0_292"\nJava(TM) SE Runtime Environment\n', 8),
        ('openjdk version "21" 2023-09-19\n', 21),
        ('openjdk version "11.0.2" 2019-01-15\n', 11),
    ],
)
def test_java_version(output: str, major: int) -> None:
    line, found = java_version(output)
    assert found == major
    assert line == output.splitlines()[0]


@pytest.mark.parametrize("output", ["", "bash: java: command not found"])
def test_java_version_unreadable(output: str) -> None:
    with pytest.raises(ValueError):
        java_version(output)


def test_config_properties() -> None:
    scenario = SCENARIOS_BY_NAME["cost10ms-batch8"]
    addresses = {key: f"http://127.0.0.1:{port}" for key, port in (("inference", 1), ("management", 2), ("metrics", 3))}
    text = config_properties(scenario, "cost", "1.0", Path("/w/store"), addresses)
    properties = dict(line.split("=", 1) for line in text.splitlines())
    assert properties["inference_address"] == "http://127.0.0.1:1"
    assert properties["management_address"] == "http://127.0.0.1:2"
    assert properties["metrics_address"] == "http://127.0.0.1:3"
    assert properties["model_store"] == "/w/store"
    assert properties["load_models"] == "cost=cost.mar"
    assert properties["default_workers_per_model"] == "1"
    assert properties["disable_token_authorization"] == "true"
    settings = json.loads(properties["models"])["cost"]["1.0"]
    assert settings == {"minWorkers": 1, "maxWorkers": 1, "batchSize": 8, "maxBatchDelay": 5, "responseTimeout": 120}


def test_archiver_args_name_every_file(tmp_path: Path) -> None:
    for name in ("digits_handler.py", "model.py", "digits_cnn.pt", "model-config.yaml", "index_to_name.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "MAR-INF").mkdir()
    (tmp_path / "MAR-INF" / "MANIFEST.json").write_text("{}")
    manifest = {
        "model": {
            "modelName": "digits",
            "modelVersion": "2.0",
            "handler": "digits_handler.py",
            "modelFile": "model.py",
            "serializedFile": "digits_cnn.pt",
            "configFile": "model-config.yaml",
        }
    }
    args = archiver_args(manifest, tmp_path)
    options = dict(zip(args[::2], args[1::2], strict=True))
    assert options == {
        "--model-name": "digits",
        "--version": "2.0",
        "--handler": str(tmp_path / "digits_handler.py"),
        "--model-file": str(tmp_path / "model.py"),
        "--serialized-file": str(tmp_path / "digits_cnn.pt"),
        "--config-file": str(tmp_path / "model-config.yaml"),
        "--extra-files": str(tmp_path / "index_to_name.json"),
    }


def test_archiver_args_handler_only(tmp_path: Path) -> None:
    (tmp_path / "h.py").write_text("x")
    args = archiver_args({"model": {"modelName": "m", "handler": "h.py"}}, tmp_path)
    assert args == ["--model-name", "m", "--version", "1.0", "--handler", str(tmp_path / "h.py")]


def test_stream_body() -> None:
    assert stream_body(b"".join(f"{i} 123\n".encode() for i in range(10)))
    assert not stream_body(b"0 123\n")


def test_temp_dir(tmp_path: Path) -> None:
    short = tmp_path / "w"
    if len(str(short / "tmp")) <= MAX_TEMP_CHARS:
        assert temp_dir(short) == short / "tmp"
        assert (short / "tmp").is_dir()
    long = tmp_path / ("x" * MAX_TEMP_CHARS)
    assert temp_dir(long) is None
    assert not long.exists()


def test_is_jvm() -> None:
    java = ["java", "-Dmodel_server_home=/v/lib", "-cp", ".:/v/ts/frontend/*", "org.pytorch.serve.ModelServer"]
    assert is_jvm(java)
    assert is_jvm(["/usr/lib/jvm/bin/java", *java[1:]])
    assert not is_jvm(["/v/bin/python", "/v/bin/torchserve", "--start", "--foreground"])
    assert not is_jvm(["/v/bin/python", "/v/ts/model_service_worker.py", "--sock-type", "unix"])
    assert not is_jvm([])


def test_unsupported(tmp_path: Path) -> None:
    peer = TorchServePeer()
    digits = SCENARIOS_BY_NAME["digits"]
    for scenario in SCENARIOS:
        if scenario.is_kserve or scenario.is_grpc:
            assert "KServe only" in (peer.unsupported(scenario) or "")
        elif scenario.protocol_path is not None or scenario.metrics_mode != "prometheus":
            assert "echo-json" in (peer.unsupported(scenario) or "")
        elif scenario.frontend_processes:
            assert "frontend processes" in (peer.unsupported(scenario) or "")
        elif scenario.handler_spec.archive is None:
            assert peer.unsupported(scenario) is None
    missing = dataclasses.replace(digits, handler="missing")
    handlers = {"missing": Handler("missing", archive=tmp_path / "digits.mar")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("benchmarks.scenarios.HANDLER_FILES", handlers)
        assert "python -m examples" in (peer.unsupported(missing) or "")
