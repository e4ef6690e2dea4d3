"""The KServe scenarios of the benchmark: their request bodies and answer checks, the KServe model file (under the
real ``kserve`` and under our shim), the headers the load generators send, which targets run them, and the KServe
targets in the report."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import json
import math
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchmarks import wrk
from benchmarks.loadgen import LoadSpec
from benchmarks.plot import log_scale
from benchmarks.probes import good_answer
from benchmarks.report import goals, lowest_common_concurrency, render_markdown
from benchmarks.runner import OPTIONAL_PEERS, may_run
from benchmarks.scenarios import (
    HANDLER_FILES,
    HEADER_LENGTH,
    KSERVE_SCENARIOS,
    SCENARIOS,
    SCENARIOS_BY_NAME,
    V1_BODY,
    V1_INSTANCES,
    V2_BINARY_BYTES,
    V2_BINARY_HEADER,
    V2_JSON_BODY,
    V2_JSON_DATA,
    v1_answer,
    v2_binary_answer,
    v2_binary_answer_with,
    v2_binary_body,
    v2_binary_headers,
    v2_binary_tensor,
    v2_json_answer,
)
from benchmarks.targets.bare import BarePeer
from benchmarks.targets.kserve import SCRIPT_FLAGS, KServePeer, grpc_flags
from benchmarks.targets.modelserver import ModelServerPeer, build_store
from benchmarks.targets.modelserver_script import ModelServerScriptPeer, kserve_package
from benchmarks.targets.mosec import MosecPeer
from benchmarks.targets.torchserve import TorchServePeer
from tests.unit.test_bench_report import load, report
from workers.kserve_compat import SHIM_DIR

MODEL_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "handlers" / "kserve_echo.py"
V1, V2_JSON, V2_BINARY = (SCENARIOS_BY_NAME[name] for name in KSERVE_SCENARIOS)
GRPC_SMALL = SCENARIOS_BY_NAME["grpc-small"]


def binary_answer(tensor: bytes | None = None, **output_changes: Any) -> tuple[bytes, int]:
    """A binary V2 answer as KServe writes one: the JSON header, then the output's bytes; and the header's length."""
    output = {
        "name": "output-0",
        "shape": [1, 262144],
        "datatype": "FP32",
        "parameters": {"binary_data_size": V2_BINARY_BYTES},
        **output_changes,
    }
    header = json.dumps({"id": "1", "model_name": "echo", "model_version": None, "outputs": [output]}).encode()
    return header + (v2_binary_tensor() if tensor is None else tensor), len(header)


# -- the scenarios ---------------------------------------------------------------------------------------------------


def test_the_kserve_scenarios_and_their_requests() -> None:
    assert KSERVE_SCENARIOS == ("kserve-v1-json", "kserve-v2-json", "kserve-v2-binary")
    assert (V1.kserve_path, V2_JSON.kserve_path, V2_BINARY.kserve_path) == (
        "/v1/models/echo:predict",
        "/v2/models/echo/infer",
        "/v2/models/echo/infer",
    )
    assert (V1.concurrency, V2_JSON.concurrency, V2_BINARY.concurrency) == ((16, 64), (16, 64), (1, 16, 64))
    assert {s.handler_spec.worker_runtime for s in (V1, V2_JSON, V2_BINARY)} == {"kserve"}
    assert HANDLER_FILES["kserve-echo"].handler_file == MODEL_FILE and HANDLER_FILES["kserve-echo"].name == "echo"
    assert not any(s.is_kserve for s in SCENARIOS if s.name not in KSERVE_SCENARIOS)
    assert 90 <= len(V1_BODY) <= 120 and json.loads(V1_BODY) == {"instances": V1_INSTANCES}
    assert V1.content_type == V2_JSON.content_type == "application/json" and V1.headers == V2_JSON.headers == ()
    tensor = json.loads(V2_JSON_BODY)["inputs"][0]
    assert tensor == {"name": "input-0", "shape": [1, 16], "datatype": "FP32", "data": V2_JSON_DATA}
    assert all(array("f", [value])[0] == value for value in V2_JSON_DATA)  # exact in FP32


def test_the_binary_request_is_header_then_one_mebibyte_of_fp32() -> None:
    body, tensor = v2_binary_body(), v2_binary_tensor()
    assert V2_BINARY.content_type == "application/octet-stream"
    assert V2_BINARY.headers == ((HEADER_LENGTH, str(len(V2_BINARY_HEADER))),)
    assert body == V2_BINARY_HEADER + tensor and len(tensor) == V2_BINARY_BYTES == 1024 * 1024
    header = json.loads(body[: len(V2_BINARY_HEADER)])
    assert header["parameters"] == {"binary_data_output": True}
    assert header["inputs"] == [
        {"name": "input-0", "shape": [1, 262144], "datatype": "FP32", "parameters": {"binary_data_size": 1048576}}
    ]
    values = array("f")
    values.frombytes(tensor)
    if sys.byteorder == "big":
        values.byteswap()
    assert all(math.isfinite(v) and -1 <= v < 1 for v in values) and len(set(values[:1000])) > 900
    assert v2_binary_body() is body  # made once


# -- the answer checks -----------------------------------------------------------------------------------------------


def test_v1_answers_are_the_instances_as_predictions() -> None:
    assert v1_answer(json.dumps({"predictions": V1_INSTANCES}, separators=(",", ":")).encode())
    assert v1_answer(json.dumps({"predictions": V1_INSTANCES}, indent=2).encode())
    assert not v1_answer(json.dumps({"predictions": V1_INSTANCES[:1]}).encode())
    assert not v1_answer(json.dumps({"instances": V1_INSTANCES}).encode())
    assert not v1_answer(b"not json") and not v1_answer(b"[1, 2]")


def v2_json(data: Any = None, **changes: Any) -> bytes:
    output = {"name": "output-0", "shape": [1, 16], "datatype": "FP32", "data": V2_JSON_DATA if data is None else data}
    return json.dumps({"model_name": "echo", "id": "x", "outputs": [{**output, **changes}]}).encode()


def test_v2_json_answers_carry_the_input_as_output_0() -> None:
    assert v2_json_answer(v2_json())
    assert v2_json_answer(v2_json([V2_JSON_DATA]))  # nested data is allowed by the specification
    assert v2_json_answer(v2_json(parameters=None))  # KServe's pydantic answer has "parameters": null
    assert not v2_json_answer(v2_json([*V2_JSON_DATA[:-1], 99.0]))
    assert not v2_json_answer(v2_json(name="output-1"))
    assert not v2_json_answer(v2_json(datatype="FP64"))
    assert not v2_json_answer(v2_json(shape=[16]))
    twice = json.loads(v2_json())
    twice["outputs"] *= 2
    assert not v2_json_answer(json.dumps(twice).encode())
    assert not v2_json_answer(b"{}") and not v2_json_answer(b"\xff")


def test_v2_binary_answers_need_the_header_length_the_header_and_the_same_bytes() -> None:
    payload, length = binary_answer()
    headers = {HEADER_LENGTH: str(length)}
    assert v2_binary_answer_with(payload, length) and v2_binary_answer(payload)
    assert v2_binary_headers(headers, payload)
    assert not v2_binary_headers({}, payload)
    assert not v2_binary_headers({HEADER_LENGTH: str(length + 1)}, payload)
    assert not v2_binary_headers({HEADER_LENGTH: "ten"}, payload)
    flipped = bytearray(payload)
    flipped[-1] ^= 1
    assert not v2_binary_answer(bytes(flipped)) and not v2_binary_headers(headers, bytes(flipped))
    short, short_length = binary_answer(v2_binary_tensor()[:-4])
    assert not v2_binary_headers({HEADER_LENGTH: str(short_length)}, short)
    as_json, json_length = binary_answer(b"", data=[0.0])
    assert not v2_binary_headers({HEADER_LENGTH: str(json_length)}, as_json)
    wrong_size, wrong_length = binary_answer(parameters={"binary_data_size": 4})
    assert not v2_binary_headers({HEADER_LENGTH: str(wrong_length)}, wrong_size)


def test_the_header_check_runs_where_answers_are_checked() -> None:
    payload, length = binary_answer()
    good, bad = {HEADER_LENGTH: str(length)}, {HEADER_LENGTH: "3"}
    assert good_answer(200, payload, V2_BINARY.check, good, V2_BINARY.header_check)
    assert not good_answer(200, payload, V2_BINARY.check, bad, V2_BINARY.header_check)
    assert not good_answer(500, payload, V2_BINARY.check, good, V2_BINARY.header_check)
    spec = LoadSpec(
        url="http://127.0.0.1:9/x",
        body=b"",
        check=V2_BINARY.check,
        headers=V2_BINARY.headers,
        header_check=V2_BINARY.header_check,
    )
    assert spec.answer_ok(good, payload) and not spec.answer_ok(bad, payload)
    assert not spec.answer_ok(good, payload[:-1])


def test_wrk_sends_the_extra_headers(tmp_path: Path) -> None:
    spec = LoadSpec(
        url="http://127.0.0.1:9/x", body=b"", content_type="application/octet-stream", headers=V2_BINARY.headers
    )
    script = wrk.script(spec, tmp_path / "body.bin")
    assert f'wrk.headers["{HEADER_LENGTH}"] = "{len(V2_BINARY_HEADER)}"' in script
    assert 'wrk.headers["Content-Type"] = "application/octet-stream"' in script


# -- the model file, under the real kserve and under our shim ----------------------------------------------------------


@dataclass
class Loaded:
    module: ModuleType
    """``kserve_echo.py``, executed."""
    types: ModuleType
    """``kserve.protocol.infer_type`` of the same package: ``InferInput``, ``InferRequest``, ``RequestedOutput``."""


@pytest.fixture(params=["installed", "shim"])
def kserve_echo(request: pytest.FixtureRequest) -> Iterator[Loaded]:
    """``kserve_echo.py`` loaded against the ``kserve`` this environment has (skipped when it is none) and against
    our shim (put first on ``sys.path`` for the test); every ``kserve`` module is restored afterwards (the real
    package registers Prometheus metrics when imported: it must not be imported twice)."""
    if request.param == "installed":
        if importlib.util.find_spec("kserve") is None:
            pytest.skip("kserve is not installed")
        importlib.import_module("kserve")
    saved = {name: module for name, module in sys.modules.items() if name == "kserve" or name.startswith("kserve.")}
    saved_path = list(sys.path)
    if request.param == "shim":
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, str(SHIM_DIR))
    try:
        spec = importlib.util.spec_from_file_location("kserve_echo_under_test", MODEL_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if request.param == "shim":
            assert module.Model.__module__.startswith("workers.")
        yield Loaded(module, importlib.import_module("kserve.protocol.infer_type"))
    finally:
        sys.path[:] = saved_path
        for name in [name for name in sys.modules if name == "kserve" or name.startswith("kserve.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_the_model_answers_v1_with_the_instances(kserve_echo: Loaded) -> None:
    model = kserve_echo.module.EchoModel("echo")
    assert model.ready and model.name == "echo"
    assert asyncio.run(model.predict({"instances": V1_INSTANCES})) == {"predictions": V1_INSTANCES}


def test_the_model_answers_v2_json_with_the_very_list(kserve_echo: Loaded) -> None:
    tensor = kserve_echo.types.InferInput("input-0", [1, 16], "FP32", data=list(V2_JSON_DATA))
    request = kserve_echo.types.InferRequest(model_name="echo", infer_inputs=[tensor], request_id="r1")
    response = asyncio.run(kserve_echo.module.EchoModel("echo").predict(request))
    (output,) = response.outputs
    assert (output.name, output.shape, output.datatype) == ("output-0", [1, 16], "FP32")
    assert output.data is tensor.data and response.id == "r1"  # no copy
    body, json_length = response.to_rest()
    assert json_length is None
    assert v2_json_answer(json.dumps(body).encode())


def test_the_model_answers_binary_with_the_same_bytes(kserve_echo: Loaded) -> None:
    body = v2_binary_body()
    request = kserve_echo.types.InferRequest.from_bytes(body, len(V2_BINARY_HEADER), "echo")
    response = asyncio.run(kserve_echo.module.EchoModel("echo").predict(request))
    answer, json_length = response.to_rest()
    assert isinstance(answer, bytes) and json_length is not None
    assert v2_binary_headers({HEADER_LENGTH: str(json_length)}, answer)


def test_a_requested_output_decides_binary_by_its_own_flag(kserve_echo: Loaded) -> None:
    tensor = kserve_echo.types.InferInput("input-0", [1, 16], "FP32", data=list(V2_JSON_DATA))
    for flag in (True, False):
        wanted = kserve_echo.types.RequestedOutput("output-0", parameters={"binary_data": flag})
        request = kserve_echo.types.InferRequest(
            model_name="echo",
            infer_inputs=[tensor],
            parameters={"binary_data_output": not flag},
            request_outputs=[wanted],
        )
        assert kserve_echo.module.wants_binary(request) is flag
        answer, json_length = asyncio.run(kserve_echo.module.EchoModel("echo").predict(request)).to_rest()
        assert (json_length is not None) is flag


def test_the_model_takes_kserves_flags(kserve_echo: Loaded) -> None:
    args = kserve_echo.module.parse_args(["--http_port", "8085", *SCRIPT_FLAGS, *grpc_flags(V1, 8086)])
    assert (args.http_port, args.model_name, args.workers, args.enable_grpc) == (8085, "echo", 1, False)
    args = kserve_echo.module.parse_args(["--http_port", "8085", *SCRIPT_FLAGS, *grpc_flags(GRPC_SMALL, 8086)])
    assert (args.enable_grpc, args.grpc_port) == (True, 8086)


# -- who runs what ---------------------------------------------------------------------------------------------------


def test_kserve_scenarios_run_on_ours_and_kserve_only() -> None:
    assert OPTIONAL_PEERS["kserve"] == ("benchmarks.targets.kserve", "KServePeer")
    for scenario in SCENARIOS:
        kserve = scenario.name in KSERVE_SCENARIOS or scenario.is_grpc
        assert ModelServerPeer().unsupported(scenario) is None
        assert (ModelServerScriptPeer().unsupported(scenario) is None) is kserve
        assert (KServePeer().unsupported(scenario) is None) is kserve
        if kserve:
            for peer in (TorchServePeer(), MosecPeer(), BarePeer()):
                assert peer.unsupported(scenario)


def test_a_peer_is_prepared_only_for_a_scenario_it_may_run() -> None:
    assert may_run(KServePeer(), V1) and not may_run(KServePeer(), SCENARIOS_BY_NAME["echo-json"])
    assert not may_run(BarePeer(), V2_BINARY) and may_run(BarePeer(), SCENARIOS_BY_NAME["echo-json"])
    assert may_run(BarePeer(), SCENARIOS_BY_NAME["digits"])  # archive scenarios: decided when they come


def test_the_report_says_which_kserve_our_targets_import(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.targets.modelserver_script as script

    monkeypatch.setattr(script.importlib.util, "find_spec", lambda name: None)
    assert kserve_package().startswith("our shim") and "not installed" in kserve_package()
    shim = importlib.machinery.ModuleSpec("kserve", None, is_package=True)
    shim.submodule_search_locations = [str(SHIM_DIR / "kserve")]
    monkeypatch.setattr(script.importlib.util, "find_spec", lambda name: shim)
    assert kserve_package() == "our shim (workers/kserve_api), first on the import path"


def test_our_model_store_gets_the_file_with_workerRuntime_kserve(tmp_path: Path) -> None:
    name, version, entry = build_store(V1, tmp_path / "store")
    model = tmp_path / "store" / entry
    manifest = json.loads((model / "MAR-INF" / "MANIFEST.json").read_text())
    assert (name, entry, manifest["model"]["handler"]) == ("echo", "echo", "kserve_echo.py")
    assert (model / "kserve_echo.py").read_bytes() == MODEL_FILE.read_bytes()
    assert (model / manifest["model"]["configFile"]).read_text().strip() == "workerRuntime: kserve"


# -- the report ------------------------------------------------------------------------------------------------------


def kserve_points(ours_rps: float = 9000.0, ours_p99: float = 10.0) -> list[dict[str, Any]]:
    points = []
    for target, scale in (("modelserver", 1.0), ("modelserver-script", 0.5), ("kserve", None)):
        for scenario, kserve_rps, levels in (
            ("kserve-v1-json", 2500.0, (16, 64)),
            ("kserve-v2-json", 1400.0, (16, 64)),
            ("kserve-v2-binary", 10.0, (1, 16)),
        ):
            for c in levels:
                if scale is None:
                    points.append(load(target, scenario, c, kserve_rps, p99=50.0))
                else:
                    rps = ours_rps * scale if "json" in scenario else 300.0 * scale
                    points.append(load(target, scenario, c, rps, p99=ours_p99 / scale))
    return points


def kserve_report(points: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    rep = report(points, **changes)
    rep["settings"]["scenarios"] = list(KSERVE_SCENARIOS)
    rep["settings"]["peers"] = ["kserve"]
    rep["targets"] |= {"modelserver-script": {"prepared": {}}, "kserve": {"prepared": {"kserve": "0.21.0"}}}
    return rep


def test_kserve_goals_for_both_of_our_targets() -> None:
    found = {goal.label: goal for goal in goals(kserve_report(kserve_points()))}
    assert len(found) == 12 and not any(label.startswith("echo JSON") for label in found)
    v1 = found["KServe V1 JSON, c=64: req/s, modelserver / KServe"]
    assert v1.value == 9000 / 2500 and v1.passed and v1.shown == "3.60x"
    script_v2 = found["KServe V2 JSON, c=64: req/s, modelserver-script / KServe"]
    assert script_v2.value == 4500 / 1400 and script_v2.passed
    assert found["KServe V1 JSON, c=64: req/s, modelserver-script / KServe"].passed is False  # 1.8x
    binary = found["KServe V2 binary 1 MiB, c=1 (lowest measured): req/s, modelserver / KServe"]
    assert binary.value == 30.0 and binary.passed
    p99 = found["KServe V2 binary 1 MiB, c=16: p99, modelserver-script / KServe"]
    assert p99.value == 20.0 / 50.0 and p99.passed
    assert found["KServe V2 JSON, c=64: p99, modelserver / KServe"].value == 0.2


def test_kserve_goals_miss_and_missing_results() -> None:
    slow = {goal.label: goal for goal in goals(kserve_report(kserve_points(ours_rps=5000.0, ours_p99=80.0)))}
    assert slow["KServe V1 JSON, c=64: req/s, modelserver / KServe"].passed is False
    assert slow["KServe V1 JSON, c=64: p99, modelserver / KServe"].passed is False
    points = [p for p in kserve_points() if p["target"] != "kserve"]
    skipped = [{"target": "kserve", "scenario": None, "reason": "pip install failed"}]
    rep = kserve_report(points, skipped=skipped)
    rep["targets"]["kserve"] = {"unavailable": "pip install failed"}
    found = goals(rep)
    assert len(found) == 12 and all(goal.passed is None for goal in found)
    assert all("kserve not run: pip install failed" in goal.note for goal in found)
    assert "KServe V2 binary 1 MiB, c=lowest (lowest measured)" in render_markdown(rep)


def test_the_lowest_concurrency_both_measured() -> None:
    points = [load("modelserver", "kserve-v2-binary", c, 1.0) for c in (1, 16, 64)]
    points += [load("kserve", "kserve-v2-binary", c, 1.0) for c in (16, 64)]
    assert lowest_common_concurrency(points, "kserve-v2-binary", ("modelserver", "kserve")) == 16
    assert lowest_common_concurrency(points, "kserve-v2-binary", ("modelserver-script", "kserve")) is None


def test_goals_are_listed_for_the_selected_scenarios_only() -> None:
    echo_only = report([load("modelserver", "echo-json", 64, 100.0)])
    echo_only["settings"]["scenarios"] = ["echo-json"]
    labels = [goal.label for goal in goals(echo_only)]
    assert labels and all(label.startswith("echo JSON") for label in labels)


def test_the_markdown_has_the_kserve_tables_in_target_order() -> None:
    rep = kserve_report(kserve_points())
    rep["targets"]["bare aiohttp"] = {"not_needed": "runs none of the selected scenarios"}
    text = render_markdown(rep)
    assert "- bare aiohttp: not prepared: runs none of the selected scenarios" in text
    section = text.split("(`kserve-v1-json`)")[1].split("## ")[0]
    rows = [
        line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ") and "conc." not in line
    ]
    assert rows == ["modelserver", "modelserver", "modelserver-script", "modelserver-script", "kserve", "kserve"]
    assert "| KServe V1 JSON, c=64: req/s, modelserver / KServe | >= 3x | 3.60x | pass |" in text


def test_the_plot_uses_a_log_scale_for_far_apart_bars() -> None:
    assert log_scale([10.0, 800.0]) and not log_scale([2500.0, 9000.0]) and not log_scale([None, 0.0])
