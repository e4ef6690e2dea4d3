"""The gRPC scenarios of the benchmark: their requests and answer checks, h2load's summary and how failed calls are
counted, the gRPC ceiling (a real grpc.aio echo driven by a real h2load when it is installed), which targets run
them, and the gRPC goals in the report."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("grpc_tools")

from benchmarks import grpc_bodies, grpc_probe, h2load
from benchmarks.grpc_echo import READY_LINE
from benchmarks.loadgen import LoadSpec
from benchmarks.report import goals, render_markdown
from benchmarks.report_points import add_ceiling_shares
from benchmarks.scenarios import GRPC_SCENARIOS, SCENARIOS, SCENARIOS_BY_NAME
from benchmarks.targets.bare import BarePeer
from benchmarks.targets.ceilings import GrpcEchoPeer, HopEchoPeer, RawEchoPeer
from benchmarks.targets.kserve import KServePeer
from benchmarks.targets.modelserver_script import ModelServerScriptPeer
from benchmarks.targets.mosec import MosecPeer
from benchmarks.targets.torchserve import TorchServePeer
from tests.unit.test_bench_report import load, report

ROOT = Path(__file__).resolve().parents[2]
pb = grpc_bodies.messages()
SUMMARY = """finished in 2.01s, 99.58 req/s, 16.08KB/s
requests: 200 total, 200 started, 200 done, 198 succeeded, 2 failed, 1 errored, 0 timeout
status codes: 199 2xx, 0 3xx, 0 4xx, 1 5xx
traffic: 32.29KB (33063) total, 675B (675) headers (space savings 95.83%), 20.51KB (20790) data
"""


def answer(size: str, *, raw: bool = True, rid: str = grpc_bodies.REQUEST_ID, shape: list[int] | None = None) -> bytes:
    request = pb.ModelInferRequest.FromString(grpc_bodies.request_body(size))
    data = request.raw_input_contents[0]
    response = pb.ModelInferResponse(model_name="echo", id=rid)
    output = response.outputs.add(name="output-0", datatype="FP32", shape=shape or request.inputs[0].shape)
    if raw:
        response.raw_output_contents.append(data)
    else:
        output.contents.fp32_contents.extend(struct.unpack(f"<{len(data) // 4}f", data))
    return response.SerializeToString()


def test_the_requests_are_raw_fp32_tensors_of_the_scenarios_sizes() -> None:
    for size, shape, nbytes in (("small", [1, 16], 64), ("large", [1, 262144], 1 << 20)):
        request = pb.ModelInferRequest.FromString(grpc_bodies.request_body(size))
        assert (request.model_name, request.id) == ("echo", grpc_bodies.REQUEST_ID)
        assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [("input-0", "FP32", shape)]
        assert [len(raw) for raw in request.raw_input_contents] == [nbytes]
    assert grpc_bodies.large_tensor() == grpc_bodies.large_tensor()  # seeded: the same every run


def test_the_check_takes_the_echo_raw_or_typed_and_nothing_else() -> None:
    check = grpc_bodies.answer_check("small")
    assert check(answer("small")) and check(answer("small", raw=False))
    assert not check(answer("small", rid="other"))
    assert not check(answer("small", shape=[16]))
    assert not check(answer("large")) and not check(b"\xff\xff") and not check(b"")
    assert grpc_bodies.answer_check("large")(answer("large"))


def test_a_grpc_message_is_framed_with_its_length() -> None:
    assert h2load.frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    spec = LoadSpec(url="http://127.0.0.1:1/inference.GRPCInferenceService/ModelInfer", body=b"", concurrency=8)
    args = h2load.command(spec, Path("body"), Path("log"), 2.5)
    assert args[:9] == ["h2load", "-t", "1", "-c", "1", "-m", "8", "-D", "3"]
    assert "content-type: application/grpc" in args and "te: trailers" in args and args[-1] == spec.url


def test_calls_without_an_answers_bytes_are_errors() -> None:
    counts = h2load.parse(SUMMARY)
    assert counts == {
        "started": 200,
        "done": 200,
        "succeeded": 198,
        "failed": 2,
        "errored": 1,
        "timeout": 0,
        "2xx": 199,
        "non_2xx": 1,
        "data_bytes": 20790,
    }
    spec = LoadSpec(url="http://127.0.0.1:1/x/y", body=b"", concurrency=4)
    # 105-byte answers: 198 whole ones; one 2xx call brought none (a gRPC error status); one stream error
    result = h2load.to_result(spec, counts, [float(i) for i in range(198)], 105, 12.5, 2)
    assert (result.requests, result.requests_per_s, result.non_2xx) == (198, 99.0, 1)
    assert result.errors == 1 + 1  # the call without its bytes, and the failure that was not an HTTP status
    assert result.p50_ms == pytest.approx(0.0985, abs=1e-3) and result.client_cpu_pct == 12.5
    torn = h2load.to_result(spec, {**counts, "data_bytes": 20791}, [], 105, 0.0, 2)
    assert any("not a whole number" in sample for sample in torn.error_samples) and torn.errors >= 1
    # A call in flight when the run ends: its status came, and part of its bytes; not an error.
    late = {**counts, "started": 201, "2xx": 200, "data_bytes": 20790 + 50}
    assert h2load.to_result(spec, late, [float(i) for i in range(198)], 105, 0.0, 2).errors == 1 + 1
    with pytest.raises(RuntimeError, match="no summary"):
        h2load.parse("connect failed")


def test_grpc_scenarios_run_on_ours_kserve_and_the_grpc_ceiling_only() -> None:
    assert GRPC_SCENARIOS == ("grpc-small", "grpc-1mb")
    for scenario in SCENARIOS:
        grpc = scenario.is_grpc
        assert (GrpcEchoPeer().unsupported(scenario) is None) is grpc
        if grpc:
            assert scenario.content_type == "application/grpc" and scenario.check is not None
            assert ModelServerScriptPeer().unsupported(scenario) is None and KServePeer().unsupported(scenario) is None
            for peer in (TorchServePeer(), MosecPeer(), BarePeer(), RawEchoPeer(), HopEchoPeer()):
                assert peer.unsupported(scenario)


def test_the_grpc_goals_are_2x_kserve_for_both_of_our_targets() -> None:
    points = [
        load("modelserver", "grpc-small", 64, 4000.0),
        load("kserve", "grpc-small", 64, 2000.0),
        load("modelserver-script", "grpc-small", 64, 3000.0),
        load("grpc.aio echo", "grpc-small", 64, 5000.0, cpu_us_per_request={"server": 200.0}),
        load("modelserver", "grpc-1mb", 16, 250.0),
        load("kserve", "grpc-1mb", 16, 100.0),
    ]
    rep = report(points)
    rep["settings"]["scenarios"] = list(GRPC_SCENARIOS)
    rep["targets"] = {name: {"prepared": {}} for name in ("modelserver", "modelserver-script", "kserve")}
    rep["grpc_client"] = {"name": "h2load", "description": "h2load", "note": "h2load nghttp2/1.52.0"}
    found = {g.label: g for g in goals(rep)}
    assert found["gRPC ModelInfer, small FP32, c=64: calls/s, modelserver / KServe"].passed is True
    assert found["gRPC ModelInfer, small FP32, c=64: calls/s, modelserver-script / KServe"].shown == "1.50x"
    assert found["gRPC ModelInfer, 1 MiB FP32, c=16: calls/s, modelserver / KServe"].value == 2.5
    assert found["gRPC ModelInfer, 1 MiB FP32, c=16: calls/s, modelserver-script / KServe"].passed is None
    add_ceiling_shares(points)
    assert points[0]["ceiling_share"] == 0.8  # of the grpc.aio echo's, not the bare aiohttp echo's
    markdown = render_markdown(rep)
    assert "- gRPC load generator: h2load (h2load nghttp2/1.52.0)" in markdown
    assert "| grpc.aio echo | 64 | 5000 | 100% |" in markdown


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_h2load_drives_the_grpc_ceiling(tmp_path: Path) -> None:
    """The real load generator against the real gRPC ceiling: every call answered with the echo's bytes."""
    from benchmarks.procs import free_port, spawn

    port = free_port()
    command = [sys.executable, "-m", "benchmarks.grpc_echo", "--port", str(port)]
    managed = spawn("grpc_echo", command, tmp_path, {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        scenario = SCENARIOS_BY_NAME["grpc-small"]
        url = f"http://127.0.0.1:{port}{scenario.grpc_method}"
        grpc_probe.wait_for_call(managed, url, scenario.body(), scenario.check, 60)
        assert READY_LINE in managed.log_tail()
        result = h2load.measure(LoadSpec(url=url, body=scenario.body(), concurrency=4, duration=1.0, warmup=0.0))
        assert result.requests > 10 and result.errors == 0 and result.non_2xx == 0, result
        assert result.p50_ms is not None and result.p50_ms <= result.p99_ms  # type: ignore[operator]
        assert grpc_probe.check_sample(url, scenario.body(), scenario.check, 3) == {
            "checked": 3,
            "mismatches": 0,
            "non_2xx": 0,
            "failures": 0,
        }
        broken = grpc_probe.check_sample(url.replace("ModelInfer", "Nope"), scenario.body(), scenario.check, 2)
        assert broken["non_2xx"] == 2
    finally:
        managed.stop()
        time.sleep(0.1)
    assert subprocess.run(["h2load", "--version"], capture_output=True).returncode == 0
