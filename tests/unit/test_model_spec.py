"""Model directories and per-model settings, with TorchServe's precedence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from modelserver.archive import InvalidModel, list_store, name_from_path, read_model_dir
from modelserver.errors import BadRequest
from modelserver.model_spec import Defaults, InvalidModelSetting, build_spec

DEFAULTS = Defaults(workers=3, job_queue_size=100, response_timeout=120, startup_timeout=120)


def model_dir(tmp_path: Path, model: dict, yaml_text: str | None = None, runtime: str | None = "python") -> Path:
    root = tmp_path / "m"
    (root / "MAR-INF").mkdir(parents=True)
    manifest: dict = {"model": model}
    if runtime:
        manifest["runtime"] = runtime
    if yaml_text is not None:
        (root / "model-config.yaml").write_text(yaml_text)
        model["configFile"] = "model-config.yaml"
    (root / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    return root


def test_manifest_fields_and_default_version(tmp_path: Path) -> None:
    artifact = read_model_dir(model_dir(tmp_path, {"modelName": "abc", "handler": "h.py"}))
    assert (artifact.name, artifact.version, artifact.handler) == ("abc", "1.0", "h.py")


def test_name_override_and_fallback_name(tmp_path: Path) -> None:
    root = model_dir(tmp_path, {"handler": "h.py"})
    assert read_model_dir(root).name == "m"
    assert read_model_dir(root, name="other").name == "other"
    assert name_from_path(Path("my model-v2.tar.gz")) == "my_model_v2"


@pytest.mark.parametrize(
    ("model", "runtime", "message"),
    [
        ({"modelName": "x", "handler": "h.py"}, None, "runtime"),
        ({"modelName": "x"}, "python", "no handler"),
        ({"modelName": "-bad", "handler": "h.py"}, "python", "Invalid model name"),
    ],
)
def test_invalid_manifests_are_refused(tmp_path: Path, model: dict, runtime: str | None, message: str) -> None:
    with pytest.raises(InvalidModel, match=message):
        read_model_dir(model_dir(tmp_path, model, runtime=runtime))


def test_config_file_outside_model_dir_is_refused(tmp_path: Path) -> None:
    root = model_dir(tmp_path, {"modelName": "x", "handler": "h.py", "configFile": "../../etc/passwd"})
    with pytest.raises(InvalidModel, match="outside"):
        read_model_dir(root)


def test_yaml_beats_models_block_for_batching_and_timeouts(tmp_path: Path) -> None:
    yaml_text = "batchSize: 8\nmaxBatchDelay: 50\nresponseTimeout: 7\nminWorkers: 2\nmaxWorkers: 4\n"
    artifact = read_model_dir(model_dir(tmp_path, {"modelName": "x", "handler": "h.py"}, yaml_text))
    entry = {"batchSize": 2, "maxBatchDelay": 10, "responseTimeout": 99, "startupTimeout": 30, "minWorkers": 1}
    spec = build_spec(artifact, entry, DEFAULTS)
    assert (spec.batch_size, spec.max_batch_delay_ms) == (8, 50)
    assert (spec.response_timeout, spec.startup_timeout) == (7, 30)
    assert (spec.min_workers, spec.max_workers) == (2, 4)


def test_models_block_beats_defaults_and_ignores_non_positive(tmp_path: Path) -> None:
    artifact = read_model_dir(model_dir(tmp_path, {"modelName": "x", "handler": "h.py"}))
    spec = build_spec(artifact, {"batchSize": 4, "maxBatchDelay": -1, "minWorkers": 0}, DEFAULTS)
    assert (spec.batch_size, spec.max_batch_delay_ms) == (4, 100)
    assert (spec.min_workers, spec.max_workers) == (3, 3)
    assert spec.response_timeout == 120


def test_api_values_beat_yaml_for_batching_only(tmp_path: Path) -> None:
    yaml_text = "batchSize: 8\nresponseTimeout: 7\n"
    artifact = read_model_dir(model_dir(tmp_path, {"modelName": "x", "handler": "h.py"}, yaml_text))
    spec = build_spec(artifact, {}, DEFAULTS, api={"batchSize": 2, "responseTimeout": 60})
    assert spec.batch_size == 2
    assert spec.response_timeout == 7


def test_invalid_yaml_worker_range_is_ignored(tmp_path: Path) -> None:
    artifact = read_model_dir(
        model_dir(tmp_path, {"modelName": "x", "handler": "h.py"}, "minWorkers: 4\nmaxWorkers: 2\n")
    )
    spec = build_spec(artifact, {}, DEFAULTS)
    assert (spec.min_workers, spec.max_workers) == (3, 3)


def test_list_store_skips_hidden_and_unknown_files(tmp_path: Path) -> None:
    for name in ("a", ".hidden", "b.mar", "c.tar.gz", "d.txt", "e.model"):
        path = tmp_path / name
        if "." in name.lstrip("."):
            path.write_bytes(b"")
        else:
            path.mkdir()
    assert [p.name for p in list_store(tmp_path)] == ["a", "b.mar", "c.tar.gz", "e.model"]


SERVER = Defaults(workers=1, job_queue_size=100, response_timeout=120, startup_timeout=120)


def test_protocol_runtime_and_envelope_default_from_the_server(tmp_path: Path) -> None:
    artifact = read_model_dir(model_dir(tmp_path, {"modelName": "m", "handler": "h.py"}))
    spec = build_spec(artifact, {}, SERVER)
    assert (spec.protocol, spec.runtime, spec.envelope) == ("torchserve", "torchserve", "")
    served = dataclasses.replace(SERVER, protocol="kserve", envelope="kservev2")
    spec = build_spec(artifact, {}, served)
    assert (spec.protocol, spec.envelope) == ("kserve", "kservev2")


def test_yaml_beats_models_block_for_protocol_and_envelope(tmp_path: Path) -> None:
    root = model_dir(tmp_path, {"modelName": "m", "handler": "h.py"}, "protocol: Angel\nserviceEnvelope: json\n")
    entry = {"protocol": "kserve", "serviceEnvelope": "kserve"}
    spec = build_spec(read_model_dir(root), entry, SERVER)
    assert (spec.protocol, spec.envelope) == ("angel", "json")
    plain = build_spec(read_model_dir(model_dir(tmp_path / "b", {"modelName": "b", "handler": "h.py"})), entry, SERVER)
    assert (plain.protocol, plain.envelope) == ("kserve", "kserve")


@pytest.mark.parametrize(("key", "value"), [("protocol", "grpc"), ("workerRuntime", "triton")])
def test_unknown_protocol_or_runtime_is_a_400(tmp_path: Path, key: str, value: str) -> None:
    artifact = read_model_dir(model_dir(tmp_path, {"modelName": "m", "handler": "h.py"}))
    with pytest.raises(InvalidModelSetting) as raised:
        build_spec(artifact, {key: value}, SERVER)
    assert raised.value.status == 400 and f"Invalid {key} '{value}' for model m" in raised.value.message


def test_torchrun_settings_reach_the_spec_and_several_nodes_are_a_400(tmp_path: Path) -> None:
    yaml_text = "parallelType: tp\ntorchrun:\n  nproc-per-node: 2\n"
    group = read_model_dir(model_dir(tmp_path / "a", {"modelName": "a", "handler": "h.py"}, yaml_text))
    spec = build_spec(group, {}, DEFAULTS)
    assert (spec.parallel.parallel_type, spec.parallel.world_size) == ("tp", 2)
    nodes_yaml = yaml_text + "  nnodes: 3\n"
    nodes = read_model_dir(model_dir(tmp_path / "b", {"modelName": "b", "handler": "h.py"}, nodes_yaml))
    with pytest.raises(BadRequest) as raised:
        build_spec(nodes, {}, DEFAULTS)
    assert raised.value.status == 400 and "torchrun.nnodes 3" in raised.value.message
