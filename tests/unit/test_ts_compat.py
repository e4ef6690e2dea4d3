"""TorchServe's ``ts`` names whichever package provides them: the wire bytes written to ``context.cl_socket``, the
``ts.metrics`` API, and the shim handing over to another ``ts`` package when one is importable."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from modelserver.metrics.backend_lines import parse_metric_line
from workers.backend_metrics import Dimension, Metrics, MetricsCacheYamlImpl, MetricTypes
from workers.handler_loader import load_service
from workers.handler_runner import Service
from workers.ts_compat import SHIM_DIR, install_ts_shim
from workers.ts_wire import WireFormatError, WirePiece, decode_predict_response, encode_predict_response

ROOT = Path(__file__).resolve().parents[2]


def int32(value: int) -> bytes:
    return struct.pack("!i", value)


def field(value: bytes) -> bytes:
    return int32(len(value)) + value


# -- the wire format ------------------------------------------------------------------------------


def torchserve_bytes() -> bytes:
    """A predict response laid out by hand as TorchServe 0.12's ``create_predict_response`` writes it."""
    first = (
        field(b"req-1")
        + field(b"text/plain")
        + int32(206)
        + field(b"Partial")
        + int32(2)
        + field(b"ts_stream_next")
        + field(b"true")
        + field(b"x-a")
        + field(b"1")
        + field(b"piece one")
    )
    second = field(b"req-2") + int32(0) + int32(200) + int32(0) + int32(0) + field(b"\x00\xff")
    return int32(200) + field(b"Intermediate") + first + second + int32(-1)


def test_a_torchserve_predict_response_decodes_into_its_pieces() -> None:
    response = decode_predict_response(torchserve_bytes())
    assert (response.code, response.message) == (200, "Intermediate")
    assert response.pieces == [
        WirePiece("req-1", "text/plain", 206, "Partial", {"ts_stream_next": "true", "x-a": "1"}, b"piece one"),
        WirePiece("req-2", "", 200, "", {}, b"\x00\xff"),
    ]
    assert encode_predict_response(response) == torchserve_bytes()


@pytest.mark.parametrize("cut", [3, 10, 30, -5, -1])
def test_a_truncated_response_is_refused(cut: int) -> None:
    with pytest.raises(WireFormatError):
        decode_predict_response(torchserve_bytes()[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(WireFormatError, match="trailing"):
        decode_predict_response(torchserve_bytes() + b"\x00")


# -- writing to context.cl_socket streams ---------------------------------------------------------


def load(model_dir: Path, source: str) -> Service:
    (model_dir / "handler.py").write_text(textwrap.dedent(source))
    return load_service(
        {
            "model_name": "m",
            "model_dir": str(model_dir),
            "handler": "handler.py",
            "runtime": "torchserve",
            "batch_size": 4,
            "manifest": {"model": {"modelName": "m", "handler": "handler.py"}},
        }
    )


def job(job_id: int, request_id: str) -> dict[str, Any]:
    return {"id": job_id, "request_id": request_id, "headers": {}, "inputs": [["body", "text/plain", b"x"]]}


SOCKET_WRITER = """
    from ts.protocol.otf_message_handler import create_predict_response

    def handle(data, context):
        if data is None:
            return None
        context.set_response_content_type(1, "text/csv")
        context.set_response_status(202, "Accepted", idx=1)
        context.cl_socket.sendall(create_predict_response(["a", "b"], context.request_ids, "part", 200, context, True))
        context.cl_socket.sendall(create_predict_response([None, {"k": 1}], {1: context.request_ids[1]}, "p", 200))
        return ["end-a", "end-b"]
"""


@pytest.mark.usefixtures("isolated_imports")
def test_bytes_written_to_cl_socket_are_streamed_with_their_status_and_headers(tmp_path: Path) -> None:
    chunks: list[dict[str, Any]] = []
    items = load(tmp_path, SOCKET_WRITER).run_batch([job(7, "r-a"), job(8, "r-b")], chunks.append)
    streamed = {"ts_stream_next": "true"}
    assert chunks == [
        {"id": 7, "status": 200, "reason": "", "headers": streamed, "content_type": "", "body": b"a"},
        {
            "id": 8,
            "status": 202,
            "reason": "Accepted",
            "headers": {**streamed, "content-type": "text/csv"},
            "content_type": "text/csv",
            "body": b"b",
        },
        {"id": 8, "status": 200, "reason": "", "headers": {}, "content_type": "", "body": b'{\n  "k": 1\n}'},
    ]
    assert [(item["id"], item["body"], item["headers"]["ts_stream_next"]) for item in items] == [
        (7, b"end-a", "false"),
        (8, b"end-b", "false"),
    ]


@pytest.mark.usefixtures("isolated_imports")
def test_a_non_200_response_on_cl_socket_ends_those_requests_and_a_foreign_id_fails_the_batch(tmp_path: Path) -> None:
    source = """
        from ts.protocol.otf_message_handler import create_predict_response

        def handle(data, context):
            if data is None:
                return None
            context.cl_socket.sendall(create_predict_response(None, {0: context.request_ids[0]}, "nope", 418))
            context.cl_socket.sendall(create_predict_response(["z"], {0: "someone-else"}, "", 200))
            return ["done"] * len(data)
    """
    chunks: list[dict[str, Any]] = []
    items = load(tmp_path, source).run_batch([job(1, "r-1")], chunks.append)
    assert chunks == [{"id": 1, "status": 418, "reason": "", "headers": {}, "content_type": "", "error": "nope"}]
    assert items[0]["status"] == 503  # the handler's ValueError about a request outside the batch


# -- ts.metrics -----------------------------------------------------------------------------------


def lines(out: io.StringIO) -> list[Any]:
    return [parse_metric_line(line.removeprefix("[METRICS]")) for line in out.getvalue().splitlines()]


def test_metrics_yaml_declares_metrics_that_get_metric_finds_and_add_or_update_prints(tmp_path: Path) -> None:
    config = tmp_path / "metrics.yaml"
    config.write_text("model_metrics:\n  gauge:\n    - name: Tokens\n      unit: count\n      dimensions: [Kind]\n")
    out = io.StringIO()
    metrics = MetricsCacheYamlImpl(str(config), model_name="m", stream=out)
    metrics.initialize_cache()
    metrics.get_metric("Tokens", MetricTypes.GAUGE).add_or_update(7, ["prompt"], "req-1")
    metrics.get_metric("Tokens", MetricTypes.GAUGE).add_or_update(1, [])  # wrong dimensions: no line
    [line] = lines(out)
    assert (line.name, line.unit, line.value, line.kind, line.request_ids) == ("Tokens", "count", 7.0, "gauge", "req-1")
    assert line.dimensions == (("Kind", "prompt"),)


def test_a_missing_metric_raises_the_ts_key_error_and_counters_never_go_down() -> None:
    assert install_ts_shim()  # the unit tests run without TorchServe
    from ts.metrics.metric_cache_errors import MetricsCacheKeyError

    out = io.StringIO()
    metrics = Metrics("m", stream=out)
    with pytest.raises(MetricsCacheKeyError):
        metrics.get_metric("Nope")
    counter = metrics.add_metric_to_cache("Loops", "count", ["Stage"], MetricTypes.COUNTER)
    counter.add_or_update(-1, ["a"])
    metrics.get_metric("Loops").update(2, "req-9", [Dimension("Stage", "b")])
    [line] = lines(out)
    assert (line.value, line.dimensions, line.request_ids) == (2.0, (("Stage", "b"),), "req-9")


# -- the shim never shadows another ts ------------------------------------------------------------


def test_with_the_shim_first_on_pythonpath_another_ts_package_still_wins(tmp_path: Path) -> None:
    other = tmp_path / "site" / "ts"
    (other / "handler_utils").mkdir(parents=True)
    (other / "__init__.py").write_text("WHO = 'other'\n")
    (other / "handler_utils" / "__init__.py").write_text("")
    (other / "handler_utils" / "utils.py").write_text("WHO = 'other utils'\n")
    script = (
        "import ts, ts.handler_utils.utils as u, workers.ts_compat as c\nprint(ts.WHO, u.WHO, c.install_ts_shim())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(ROOT), str(tmp_path / "site")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["other", "other", "utils", "False"]


def test_with_only_the_shim_on_pythonpath_handlers_and_their_tests_import_ts() -> None:
    script = (
        "import ts, ts.context, ts.utils.util, ts.launcher, ts.metrics.dimension, ts.metrics.metric_type_enum\n"
        "import ts.torch_handler.base_handler as b, ts.handler_utils.utils, ts.handler_utils.timer\n"
        "from ts.torch_handler.unit_tests.test_utils.mock_context import MockContext\n"
        "import workers.ts_compat as c\n"
        "mock = MockContext(model_dir='d', model_file=None, gpu_id=None)\n"
        "assert mock.manifest == {'model': {'serializedFile': 'model.pt'}}, mock.manifest\n"
        "assert mock.system_properties == {'model_dir': 'd'} and mock.metrics.model_name == 'mnist'\n"
        "print(ts.__file__, b.BaseHandler.__name__, c.install_ts_shim())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    file, base, used = done.stdout.split()
    assert Path(file).parent.parent == SHIM_DIR and (base, used) == ("BaseHandler", "True")


def test_ts_path_prints_the_shim_directory() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelserver.ts_path"], capture_output=True, text=True, timeout=60, check=True
    )
    assert Path(done.stdout.strip()) == SHIM_DIR
