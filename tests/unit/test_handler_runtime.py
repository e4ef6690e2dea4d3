"""Real handler files on disk, loaded with ``load_service`` and driven with ``run_batch``."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from workers import runtimes, worker_main
from workers.handler_loader import LoadError, load_service
from workers.handler_runner import Service
from workers.protocol import ATTACH_MIN, PROTOCOL_VERSION, job_from_wire, job_to_wire
from workers.runtimes import load_runtime
from workers.socket_channel import SocketChannel
from workers.tensors import Tensor

pytestmark = pytest.mark.usefixtures("isolated_imports")


def write(model_dir: Path, source: str, name: str = "handler.py") -> None:
    (model_dir / name).write_text(textwrap.dedent(source))


def load(model_dir: Path, handler: str = "handler.py", **overrides: Any) -> Service:
    message = {
        "model_name": "m",
        "model_version": "1.0",
        "model_dir": str(model_dir),
        "handler": handler,
        "runtime": "torchserve",
        "batch_size": 4,
        "gpu_id": None,
        "envelope": "",
        "limit_max_image_pixels": True,
        "decode_input_request": True,
        "manifest": {"model": {"modelName": "m", "handler": handler}},
        "model_yaml_config": {"handler": {"greeting": "hi"}},
    }
    return load_service({**message, **overrides})


def job(
    job_id: int, body: bytes = b"x", content_type: str = "text/plain", method: str = "predict", **headers: str
) -> dict[str, Any]:
    """A job map as the frontend sends it: the client's headers only, the method, and optional fields when set."""
    return {
        "id": job_id,
        "request_id": f"req-{job_id}",
        "headers": dict(headers),
        "inputs": [["body", content_type, body]],
        "method": method,
    }


def run(
    service: Service, jobs: list[dict[str, Any]], cancelled: Callable[[int], bool] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    chunks: list[dict[str, Any]] = []
    return service.run_batch(jobs, chunks.append, cancelled), chunks


def ok(job_id: int, body: bytes, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "status": 200, "reason": "", "headers": {}, "content_type": "", "body": body, **extra}


def failed(job_id: int, status: int, message: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "reason": "", "headers": {}, "content_type": "", "error": message}


ECHO = """
    calls = []

    def handle(data, context):
        calls.append(data)
        if data is None:
            return None
        return [row["body"] for row in data]
"""


# -- loading --------------------------------------------------------------------------------------


def test_module_function_is_initialised_with_none_then_serves_batches(tmp_path: Path) -> None:
    write(tmp_path, ECHO)
    service = load(tmp_path)
    assert sys.modules["handler"].calls == [None]
    items, chunks = run(service, [job(1, b"a"), job(2, b"b")])
    assert items == [ok(1, b"a"), ok(2, b"b")]
    assert chunks == []
    assert sys.path[0] == str(tmp_path)


def test_class_handler_is_instantiated_and_initialised_with_the_context(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        from ts.context import Context

        class Greeter:
            def initialize(self, context: Context):
                self.props = dict(context.system_properties)
                self.greeting = context.model_yaml_config["handler"]["greeting"]
                self.manifest = context.manifest
                self.name = context.model_name

            def handle(self, data, context):
                return [{"greeting": self.greeting, "props": self.props, "name": self.name} for _ in data]
        """,
    )
    items, _ = run(load(tmp_path), [job(7)])
    assert items[0]["status"] == 200
    body = items[0]["body"]
    assert body == json.dumps(json.loads(body), indent=2).encode()  # TorchServe's json.dumps(x, indent=2)
    assert json.loads(body) == {
        "greeting": "hi",
        "name": "m",
        "props": {
            "model_dir": str(tmp_path),
            "gpu_id": None,
            "batch_size": 4,
            "server_name": "MMS",
            "server_version": "0.12.0",
            "limit_max_image_pixels": True,
        },
    }


def test_file_and_function_form_picks_the_named_function(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        def handle(data, context):
            return ["default" for _ in data or []]

        def custom(data, context):
            return ["custom" for _ in data or []]
        """,
        name="my_handler.py",
    )
    items, _ = run(load(tmp_path, "my_handler.py:custom"), [job(1)])
    assert items == [ok(1, b"custom")]


def test_module_form_without_py_suffix(tmp_path: Path) -> None:
    write(tmp_path, ECHO, name="echo_mod.py")
    items, _ = run(load(tmp_path, "echo_mod"), [job(1, b"hey")])
    assert items == [ok(1, b"hey")]


def test_class_handler_subclassing_an_imported_base_counts_only_its_own_class(tmp_path: Path) -> None:
    write(tmp_path, "class Base:\n    def initialize(self, context):\n        self.ready = True\n", name="basemod.py")
    write(
        tmp_path,
        """
        from basemod import Base

        class Mine(Base):
            def handle(self, data, context):
                return [str(self.ready) for _ in data]
        """,
    )
    items, _ = run(load(tmp_path), [job(1)])
    assert items == [ok(1, b"True")]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class A:\n    pass\nclass B:\n    pass\n", "Expected only one class"),
        ("VALUE = 1\n", "Expected only one class"),
        ("class A:\n    pass\n", "Expect handle method"),
    ],
)
def test_handler_without_entry_point_is_a_load_error_naming_the_handler(
    tmp_path: Path, source: str, expected: str
) -> None:
    write(tmp_path, source, name="bad_handler.py")
    with pytest.raises(LoadError) as err:
        load(tmp_path, "bad_handler.py")
    assert err.value.status == 500
    assert expected in str(err.value)
    assert "bad_handler.py" in str(err.value)


def test_unknown_handler_name_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as err:
        load(tmp_path, "no_such_handler")
    assert err.value.status == 500
    assert "no_such_handler" in str(err.value)
    assert "ts.torch_handler.no_such_handler" in str(err.value)


def test_missing_dependency_of_the_handler_is_reported_not_masked(tmp_path: Path) -> None:
    write(tmp_path, "import surely_not_installed_pkg\n\ndef handle(data, context):\n    return []\n")
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    assert err.value.status == 500
    assert "surely_not_installed_pkg" in str(err.value)


def test_exception_during_initialize_is_500_with_its_text(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        class H:
            def initialize(self, context):
                raise RuntimeError("weights missing")

            def handle(self, data, context):
                return data
        """,
    )
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    assert (err.value.status, str(err.value)) == (500, "weights missing")


def test_memory_error_during_load_is_507(tmp_path: Path) -> None:
    write(tmp_path, "def handle(data, context):\n    raise MemoryError()\n")
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    assert (err.value.status, str(err.value)) == (507, "System out of memory")


def test_ts_shim_is_importable_when_torchserve_is_absent(tmp_path: Path) -> None:
    write(tmp_path, ECHO)
    load(tmp_path)
    spec = importlib.util.find_spec("ts")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).parent.parent.name == "ts_shim"


# -- errors ---------------------------------------------------------------------------------------


PREDICTION_EXCEPTION = """
    from ts.utils.util import PredictionException
    from ts.handler_utils.utils import send_intermediate_predict_response

    def handle(data, context):
        if data is None:
            return None
        raise PredictionException("teapot says no", 599)
"""


def test_prediction_exception_gives_its_code_and_message_to_every_job(tmp_path: Path) -> None:
    write(tmp_path, PREDICTION_EXCEPTION)
    items, _ = run(load(tmp_path), [job(1), job(2)])
    assert items == [failed(1, 599, "teapot says no"), failed(2, 599, "teapot says no")]


def test_prediction_exception_of_another_package_is_matched_by_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        class PredictionException(Exception):
            def __init__(self, message, error_code=500):
                super().__init__(message)
                self.message = message
                self.error_code = error_code

        def handle(data, context):
            if data is not None:
                raise PredictionException("from the real ts", 418)
        """,
    )
    items, _ = run(load(tmp_path), [job(1)])
    assert items == [failed(1, 418, "from the real ts")]


@pytest.mark.parametrize(
    ("raise_statement", "status", "message"),
    [
        ("raise ValueError('bad input')", 503, "Prediction failed"),
        ("raise MemoryError()", 507, "Out of resources"),
        ("raise RuntimeError('CUDA out of memory. Tried to allocate 2 GiB')", 507, "Out of resources"),
    ],
)
def test_handler_exceptions_map_to_torchserve_statuses(
    tmp_path: Path, raise_statement: str, status: int, message: str
) -> None:
    write(tmp_path, f"def handle(data, context):\n    if data is not None:\n        {raise_statement}\n")
    items, _ = run(load(tmp_path), [job(1), job(2)])
    assert items == [failed(1, status, message), failed(2, status, message)]


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("[row['body'] for row in data][:-1]", "number of batch response mismatched"),
        ("{'not': 'a list'}", "Invalid model predict output"),
        ("[object() for _ in data]", "Unsupported model output data type."),
    ],
)
def test_bad_handler_output_fails_only_that_batch(tmp_path: Path, returned: str, message: str) -> None:
    write(
        tmp_path,
        f"""
        broken = True

        def handle(data, context):
            if data is None:
                return None
            if broken:
                return {returned}
            return [row["body"] for row in data]
        """,
    )
    service = load(tmp_path)
    items, _ = run(service, [job(1), job(2)])
    assert items == [failed(1, 503, message), failed(2, 503, message)]
    sys.modules["handler"].broken = False
    assert run(service, [job(3, b"fine")])[0] == [ok(3, b"fine")]


# -- success encoding and per-request response state -----------------------------------------------


def test_dict_list_and_number_results_are_indented_json(tmp_path: Path) -> None:
    write(tmp_path, "def handle(data, context):\n    return [{'a': [1, 2]}, [3], 4.5][: len(data or [])]\n")
    items, _ = run(load(tmp_path), [job(1), job(2), job(3)])
    assert [item["body"] for item in items] == [
        json.dumps({"a": [1, 2]}, indent=2).encode(),
        json.dumps([3], indent=2).encode(),
        b"4.5",
    ]


def test_bytes_and_bytearray_are_sent_as_is(tmp_path: Path) -> None:
    write(tmp_path, "def handle(data, context):\n    return [b'\\x00raw', bytearray(b'\\xffba')][: len(data or [])]\n")
    items, _ = run(load(tmp_path), [job(1), job(2)])
    assert [item["body"] for item in items] == [b"\x00raw", b"\xffba"]


def test_tensor_result_is_torch_saved(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    write(
        tmp_path,
        """
        import torch

        def handle(data, context):
            return [torch.arange(3, dtype=torch.float32) * (i + 1) for i, _ in enumerate(data or [])]
        """,
    )
    items, _ = run(load(tmp_path), [job(1), job(2)])
    tensors = [torch.load(io.BytesIO(item["body"])) for item in items]
    assert torch.equal(tensors[1], torch.tensor([0.0, 2.0, 4.0]))


def test_per_request_status_headers_and_content_type(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        def handle(data, context):
            if data is None:
                return None
            context.set_response_status(201, "Created", idx=0)
            context.set_response_header(0, "X-Seen-Client", context.get_request_header(0, "X-Client"))
            context.set_response_content_type(0, "application/x-thing")
            assert context.get_response_content_type(0) == "application/x-thing"
            assert context.get_response_status(0) == (201, "Created")
            out = []
            for idx, _ in enumerate(data):
                out.append({
                    "request_id": context.get_request_id(idx),
                    "ids": context.request_ids,
                    "body_header": context.get_request_header(idx, "body"),
                    "url_path": context.get_request_header(idx, "url_path"),
                    "all": sorted(context.get_all_request_header(idx)),
                    "processor": context.request_processor[idx].get_request_header("X-Client"),
                })
            return out
        """,
    )
    items, _ = run(load(tmp_path), [job(1, **{"X-Client": "one"}), job(2, b"{}", "application/json")])
    first, second = items
    assert (first["status"], first["reason"], first["content_type"]) == (201, "Created", "application/x-thing")
    assert first["headers"] == {"X-Seen-Client": "one", "content-type": "application/x-thing"}
    assert (second["status"], second["reason"], second["headers"], second["content_type"]) == (200, "", {}, "")
    assert json.loads(first["body"]) == {
        "request_id": "req-1",
        "ids": {"0": "req-1", "1": "req-2"},
        "body_header": {"content-type": "text/plain"},
        "url_path": "",
        "all": ["X-Client", "body", "explain", "url_path"],
        "processor": "one",
    }
    assert json.loads(second["body"])["body_header"] == {"content-type": "application/json"}


def test_status_given_as_a_numpy_integer_is_the_answers(tmp_path: Path) -> None:
    """A status code computed with numpy (TorchServe packs it with ``struct.pack``, which takes any integer): the
    compiled runner read ``get_response_status_code()`` as ``int | None`` and failed the batch with 503."""
    pytest.importorskip("numpy")
    write(
        tmp_path,
        """
        from http import HTTPStatus

        import numpy as np

        def handle(data, context):
            if data is None:
                return None
            context.set_response_status(np.int64(201), "Created", idx=0)
            context.set_response_status(202, HTTPStatus.ACCEPTED, idx=1)  # a phrase that is not a str
            return ["made"] * len(data)
        """,
    )
    items, _ = run(load(tmp_path), [job(1), job(2)])
    assert items == [ok(1, b"made", status=201, reason="Created"), ok(2, b"made", status=202, reason="202")]
    assert type(items[0]["status"]) is int  # msgpack packs a Python int, not a numpy one
    assert type(items[1]["reason"]) is str  # the frontend's result takes a str


def test_status_set_while_the_output_is_encoded_is_the_answers(tmp_path: Path) -> None:
    """An output whose own code runs as it is encoded (a str subclass's encode) may still set the status: the
    answer's fields are read after the body is made, as TorchServe's worker does."""
    write(
        tmp_path,
        """
        class Late(str):
            def encode(self, *args):
                CONTEXT.set_response_status(202, "Accepted", idx=0)
                return str.encode(self, *args)

        CONTEXT = None

        def handle(data, context):
            global CONTEXT
            CONTEXT = context
            if data is None:
                return None
            return [Late("later")]
        """,
    )
    items, _ = run(load(tmp_path), [job(1)])
    assert (items[0]["status"], items[0]["reason"], items[0]["body"]) == (202, "Accepted", b"later")


def test_set_all_response_status_and_fresh_state_per_batch(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        def handle(data, context):
            if data is None:
                return None
            if data[0]["body"] == "set":
                context.set_all_response_status(202, "Accepted")
                context.set_response_header(0, "X-Once", "1")
            return ["done" for _ in data]
        """,
    )
    service = load(tmp_path)
    items, _ = run(service, [job(1, b"set"), job(2)])
    assert [(i["status"], i["reason"]) for i in items] == [(202, "Accepted"), (202, "Accepted")]
    assert items[0]["headers"] == {"X-Once": "1"}
    assert run(service, [job(3, b"plain")])[0] == [ok(3, b"done")]


def test_input_content_type_header_given_flat_by_the_frontend_keeps_torchserve_shape(tmp_path: Path) -> None:
    write(
        tmp_path, "def handle(data, context):\n    return [context.get_request_header(0, 'body')] if data else None\n"
    )
    flat = job(1, b"{}", "application/json")
    flat["headers"]["body"] = "application/json"
    items, _ = run(load(tmp_path), [flat])
    assert json.loads(items[0]["body"]) == {"content-type": "application/json"}


# -- input decoding -------------------------------------------------------------------------------

TYPES = """
    def handle(data, context):
        if data is None:
            return None
        return [{k: [type(v).__name__, v if isinstance(v, (str, dict, list)) else bytes(v).decode()]
                 for k, v in row.items()} for row in data]
"""


def typed_job(job_id: int) -> dict[str, Any]:
    message = job(job_id)
    message["inputs"] = [
        ["j", "application/json", b'{"a": 1}'],
        ["t", "text/plain", b"caf\xc3\xa9"],
        ["o", "application/octet-stream", b"raw"],
        ["bad", "application/json", b"{not json"],
    ]
    return message


def test_decode_input_request_on(tmp_path: Path) -> None:
    write(tmp_path, TYPES)
    items, _ = run(load(tmp_path), [typed_job(1)])
    assert json.loads(items[0]["body"]) == {
        "j": ["dict", {"a": 1}],
        "t": ["str", "café"],
        "o": ["bytearray", "raw"],
        "bad": ["bytearray", "{not json"],
    }


def test_decode_input_request_off_gives_bytearrays(tmp_path: Path) -> None:
    write(tmp_path, TYPES)
    items, _ = run(load(tmp_path, decode_input_request=False), [typed_job(1)])
    assert json.loads(items[0]["body"]) == {
        "j": ["bytearray", '{"a": 1}'],
        "t": ["bytearray", "café"],
        "o": ["bytearray", "raw"],
        "bad": ["bytearray", "{not json"],
    }


# -- streaming and cancellation -------------------------------------------------------------------

STREAMING = """
    from ts.handler_utils.utils import send_intermediate_predict_response
    from ts.protocol.otf_message_handler import send_intermediate_predict_response as otf_send

    def handle(data, context):
        if data is None:
            return None
        for step in range(3):
            send = otf_send if step == 1 else send_intermediate_predict_response
            send(["hello"] * len(data), context.request_ids, "Intermediate Prediction success", 200, context)
        return ["hello world "] * len(data)
"""


def test_send_intermediate_predict_response_streams_three_chunks_then_the_final(tmp_path: Path) -> None:
    write(tmp_path, STREAMING)
    items, chunks = run(load(tmp_path), [job(1), job(2)])
    streamed = {"ts_stream_next": "true"}
    assert chunks == [ok(1, b"hello", headers=streamed), ok(2, b"hello", headers=streamed)] * 3
    done = {"ts_stream_next": "false"}
    assert items == [ok(1, b"hello world ", headers=done), ok(2, b"hello world ", headers=done)]


def test_send_intermediate_predict_response_takes_a_numpy_integer_code(tmp_path: Path) -> None:
    """TorchServe packs ``code`` with ``struct.pack("!i", code)``, which takes a numpy integer; the compiled runner's
    ``int`` parameter refused one (TypeError: the batch failed with 503)."""
    pytest.importorskip("numpy")
    write(
        tmp_path,
        """
        import numpy as np
        from ts.handler_utils.utils import send_intermediate_predict_response

        def handle(data, context):
            if data is None:
                return None
            send_intermediate_predict_response(["a"] * len(data), context.request_ids, "ok", np.int64(200), context)
            return ["b"] * len(data)
        """,
    )
    items, chunks = run(load(tmp_path), [job(1)])
    assert chunks == [ok(1, b"a", headers={"ts_stream_next": "true"})]
    assert items == [ok(1, b"b", headers={"ts_stream_next": "false"})]


def test_generator_handler_streams_each_yield_and_ends_with_empty_bodies(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        def handle(data, context):
            for word in ["one", "two", "three"]:
                yield [f"{word}-{row['body']}" for row in data or []]
        """,
    )
    items, chunks = run(load(tmp_path), [job(1, b"a"), job(2, b"b")])
    assert [(c["id"], c["body"]) for c in chunks] == [
        (1, b"one-a"),
        (2, b"one-b"),
        (1, b"two-a"),
        (2, b"two-b"),
        (1, b"three-a"),
        (2, b"three-b"),
    ]
    done = {"ts_stream_next": "false"}
    assert items == [ok(1, b"", headers=done), ok(2, b"", headers=done)]


def test_generator_yielding_the_wrong_count_fails_the_batch(tmp_path: Path) -> None:
    write(tmp_path, "def handle(data, context):\n    yield ['only one']\n")
    items, chunks = run(load(tmp_path), [job(1), job(2)])
    assert chunks == []
    message = "number of batch response mismatched"
    assert items == [failed(1, 503, message), failed(2, 503, message)]


def test_cancelled_stream_raises_into_the_handler_and_stops(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        from ts.handler_utils.utils import send_intermediate_predict_response

        seen = []

        def handle(data, context):
            if data is None:
                return None
            for _ in range(5):
                seen.append(context.is_cancelled(0))
                send_intermediate_predict_response(["piece"], context.request_ids, "", 200, context)
            return ["end"]
        """,
    )
    gone: set[int] = set()
    chunks: list[dict[str, Any]] = []

    def emit(chunk: dict[str, Any]) -> None:
        chunks.append(chunk)
        gone.add(chunk["id"])  # the client leaves after its first piece

    items = load(tmp_path).run_batch([job(9)], emit, gone.__contains__)
    assert len(chunks) == 1
    assert sys.modules["handler"].seen == [False, True]
    assert items == [failed(9, 503, "Request cancelled.")]


def test_cancelled_job_is_skipped_while_others_keep_streaming(tmp_path: Path) -> None:
    write(tmp_path, STREAMING)
    items, chunks = run(load(tmp_path), [job(1), job(2)], cancelled=lambda job_id: job_id == 1)
    assert [c["id"] for c in chunks] == [2, 2, 2]
    assert [i["id"] for i in items] == [1, 2]


def test_intermediate_response_with_an_error_code_fails_those_requests(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        from ts.handler_utils.utils import send_intermediate_predict_response

        def handle(data, context):
            if data is None:
                return None
            send_intermediate_predict_response(None, context.request_ids, "upstream broke", 502, context)
            return ["x"]
        """,
    )
    _, chunks = run(load(tmp_path), [job(4)])
    assert chunks == [failed(4, 502, "upstream broke")]


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_print_torchserve_lines_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        tmp_path,
        """
        def handle(data, context):
            if data is None:
                context.metrics.add_counter("Loads", 1)
                return None
            context.metrics.add_time("InferenceTime", 12.5, idx=0)
            context.metrics.add_size("Payload", 3, unit="kB")
            context.metrics.add_percent("Util", 50)
            context.metrics.add_metric("Custom", 2, "items", dimensions=["Kind:test"])
            return ["ok" for _ in data]
        """,
    )
    service = load(tmp_path)
    run(service, [job(1), job(2)])
    lines = capsys.readouterr().out.splitlines()
    host_ts = r"\|#hostname:[^,]+,\d+"
    expected = [
        rf"\[METRICS\]Loads\.count:1\|#Level:Error\|#type:COUNTER{host_ts}$",
        rf"\[METRICS\]InferenceTime\.ms:12\.5\|#ModelName:m,Level:Model\|#type:GAUGE{host_ts},req-1$",
        rf"\[METRICS\]Payload\.kB:3\|#ModelName:m,Level:Model\|#type:GAUGE{host_ts},req-1,req-2$",
        rf"\[METRICS\]Util\.percent:50\|#ModelName:m,Level:Model\|#type:GAUGE{host_ts},req-1,req-2$",
        rf"\[METRICS\]Custom\.items:2\|#Kind:test,ModelName:m,Level:Model\|#type:COUNTER{host_ts},req-1,req-2$",
    ]
    assert len(lines) == len(expected)
    for pattern, line in zip(expected, lines, strict=True):
        assert re.match(pattern, line), line


# -- job fields: method, url_path, tensors ------------------------------------------------------------

HEADERS_SEEN = """
    def handle(data, context):
        if data is None:
            return None
        return [
            {name: context.get_request_header(idx, name) for name in ("url_path", "explain", "describe", "X-Client")}
            for idx in range(len(data))
        ]
"""


def test_method_and_url_path_become_torchserve_headers(tmp_path: Path) -> None:
    write(tmp_path, HEADERS_SEEN)
    predict = job(1, **{"X-Client": "c", "url_path": "spoofed", "explain": "True", "describe": "True"})
    predict["url_path"] = "extra/path"
    jobs = [predict, job(2, method="explain"), job(3, method="describe"), job(4, method="custom")]
    items, _ = run(load(tmp_path), jobs)
    seen = [json.loads(item["body"]) for item in items]
    assert seen == [
        # the job's url_path and method override client headers of those names; others pass through, as in TorchServe
        {"url_path": "extra/path", "explain": "False", "describe": "True", "X-Client": "c"},
        {"url_path": "", "explain": "True", "describe": None, "X-Client": None},
        {"url_path": None, "explain": None, "describe": "True", "X-Client": None},
        {"url_path": "", "explain": "False", "describe": None, "X-Client": None},
    ]


TENSORS_SEEN = """
    def describe(value):
        if not hasattr(value, "dtype"):
            return [type(value).__name__, value if isinstance(value, str) else bytes(value).decode()]
        values = [v.decode() if isinstance(v, bytes) else v for v in value.reshape(-1).tolist()]
        return ["ndarray", str(value.dtype), list(value.shape), values, value.flags.writeable]

    def handle(data, context):
        if data is None:
            return None
        return [{name: describe(value) for name, value in row.items()} for row in data]
"""


def test_tensors_reach_the_handler_as_numpy_arrays_in_data(tmp_path: Path) -> None:

    write(tmp_path, TENSORS_SEEN)
    with_tensors = job(1, b"raw", "application/octet-stream")
    large = bytearray(struct.pack("<2f", 1.5, -2.0) * (ATTACH_MIN // 8))  # as an attachment arrives
    with_tensors["tensors"] = [
        Tensor.from_list("x", "FP32", [2, 2], [[1.0, 2.0], [3.0, 4.0]]).to_wire(),
        Tensor.from_list("words", "BYTES", [2], ["hé", b"\x00"]).to_wire(),
        {**Tensor("big", "FP32", [ATTACH_MIN // 4], large).to_wire(), "data": large},
    ]
    items, _ = run(load(tmp_path), [with_tensors, job(2, b"plain")])
    first, second = (json.loads(item["body"]) for item in items)
    assert first["body"] == ["bytearray", "raw"]
    assert first["x"] == ["ndarray", "float32", [2, 2], [1.0, 2.0, 3.0, 4.0], True]
    assert first["words"] == ["ndarray", "object", [2], ["hé", "\x00"], True]
    assert first["big"][:3] == ["ndarray", "float32", [ATTACH_MIN // 4]] and first["big"][3][:4] == [1.5, -2.0] * 2
    assert first["big"][4] is True
    assert second == {"body": ["str", "plain"]}  # a job without tensors: no numpy involved


def test_a_malformed_tensor_fails_the_batch_not_the_worker(tmp_path: Path) -> None:
    write(tmp_path, ECHO)
    bad = job(1)
    bad["tensors"] = [{"name": "x", "datatype": "FP32", "shape": [2], "data": b"\0"}]
    items, _ = run(load(tmp_path), [bad, job(2)])
    assert [(item["id"], item["status"]) for item in items] == [(1, 500), (2, 500)]
    assert "tensor 'x'" in items[0]["error"]


# -- the runtime seam -----------------------------------------------------------------------------


def load_message(model_dir: Path, runtime: Any = "torchserve", handler: str = "handler.py") -> dict[str, Any]:
    return {
        "kind": "load",
        "model_name": "m",
        "model_version": "1.0",
        "model_dir": str(model_dir),
        "handler": handler,
        "runtime": runtime,
        "batch_size": 1,
        "gpu_id": None,
        "envelope": "",
        "limit_max_image_pixels": True,
        "decode_input_request": True,
        "manifest": {"model": {"modelName": "m", "handler": handler}},
        "model_yaml_config": {},
    }


def test_load_runtime_dispatches_on_the_runtime_kind(tmp_path: Path) -> None:

    write(tmp_path, ECHO)
    runtime = load_runtime(load_message(tmp_path))
    assert isinstance(runtime, Service)
    assert runtime.run_batch([job(1, b"hi")], lambda chunk: None, lambda job_id: False) == [ok(1, b"hi")]


@pytest.mark.parametrize(("kind", "shown"), [("triton", "triton"), ("", ""), (None, "None")])
def test_unknown_runtime_kind_is_a_load_error(tmp_path: Path, kind: Any, shown: str) -> None:

    assert runtimes.LoadError is LoadError  # one LoadError, importable from both places
    with pytest.raises(LoadError) as err:
        load_runtime(load_message(tmp_path, kind))
    assert (err.value.status, str(err.value)) == (
        500,
        f"Unknown runtime kind '{shown}'; known: torchserve, kserve, servable",
    )


FAKE_RUNTIME = """
    from workers.runtimes import LoadError
    from workers.tensors import Tensor


    class Doubler:
        def run_batch(self, jobs, emit_chunk, is_cancelled):
            items = []
            for job in jobs:
                [wire] = job["tensors"]
                doubled = [2 * value for value in Tensor.from_wire(wire).to_list()]
                emit_chunk({"id": job["id"], "status": 200, "reason": "", "headers": {}, "content_type": "",
                            "body": b"half-way"})
                items.append({"id": job["id"], "status": 200, "reason": "", "headers": {}, "content_type": "",
                              "body": b"", "parameters": {"p": job.get("parameters")},
                              "tensors": [Tensor.from_list("out", "INT64", [len(doubled)], doubled)]})
            return items


    def load(message):
        if message["handler"] == "broken":
            raise LoadError("cannot load that", 507)
        if message["handler"] == "crash":
            raise RuntimeError("boom")
        return Doubler()
"""


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SocketChannel]:
    """``worker_main.serve`` on one end of a socketpair (in a thread), a frontend's channel on the other."""

    write(tmp_path, FAKE_RUNTIME, name="fake_runtime.py")
    sys.path.insert(0, str(tmp_path))
    monkeypatch.setitem(runtimes.RUNTIMES, "fake", "fake_runtime")
    left, right = socket.socketpair()
    left.settimeout(10)
    right.settimeout(10)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(worker_main.serve(SocketChannel(left), "cpu")))
    worker.start()
    frontend = SocketChannel(right)
    try:
        yield frontend
    finally:
        worker.join(10)
        left.close()
        right.close()
    assert not worker.is_alive()


def test_worker_main_serves_any_runtime_and_sends_its_tensors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:

    with serving(monkeypatch, tmp_path) as frontend:
        hello = frontend.recv()
        assert hello is not None and (hello["kind"], hello["version"]) == ("hello", PROTOCOL_VERSION)
        frontend.send(load_message(tmp_path, "fake"))
        assert frontend.recv() == {"kind": "loaded", "status": 200, "message": "loaded model m"}
        small = Tensor.from_list("x", "INT64", [3], [1, 2, 3])
        large = Tensor.from_list("x", "INT64", [ATTACH_MIN], list(range(ATTACH_MIN)))
        first_job = job_to_wire(1, "r1", {}, [], "predict", {"tensors": [small.to_wire()], "parameters": {"k": "v"}})
        second_job = job_to_wire(2, "r2", {}, [], "predict", {"tensors": [large.to_wire()]})
        frontend.send({"kind": "infer", "jobs": [first_job]})
        frontend.send({"kind": "infer", "jobs": [second_job]})
        received = [frontend.recv() for _ in range(4)]
        frontend.send({"kind": "shutdown"})
    assert [message["kind"] for message in received] == ["chunk", "result", "chunk", "result"]
    assert received[0]["item"][5] == b"half-way"  # an item array: [id, status, reason, headers, type, body, optional]
    first, second = received[1]["items"][0][6], received[3]["items"][0][6]
    assert first["parameters"] == {"p": {"k": "v"}} and second["parameters"] == {"p": None}
    assert Tensor.from_wire(first["tensors"][0]).to_list() == [2, 4, 6]
    out = Tensor.from_wire(second["tensors"][0])
    assert type(out.data) is bytearray and out.to_list() == [2 * n for n in range(ATTACH_MIN)]


@pytest.mark.parametrize(
    ("handler", "status", "message"), [("broken", 507, "cannot load that"), ("crash", 500, "boom")]
)
def test_worker_main_reports_a_runtime_that_fails_to_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, handler: str, status: int, message: str
) -> None:
    with serving(monkeypatch, tmp_path) as frontend:
        assert frontend.recv()["kind"] == "hello"  # type: ignore[index]
        frontend.send(load_message(tmp_path, "fake", handler))
        assert frontend.recv() == {"kind": "loaded", "status": status, "message": message}


def test_cancels_and_pauses_of_finished_jobs_are_not_kept() -> None:
    """The frontend cancels a job whose client left even when the job's result is already on its way back: the
    worker must not keep such ids (nothing would ever forget them), while it keeps those of jobs it holds."""
    left, right = socket.socketpair()
    left.settimeout(10)
    try:
        inbox = worker_main._Inbox(SocketChannel(left))
        frontend = SocketChannel(right)
        for finished in range(1, 101):
            frontend.send({"kind": "cancel", "ids": [finished]})
            frontend.send({"kind": "pause", "ids": [finished]})
        frontend.send({"kind": "infer", "jobs": [job_to_wire(101, "r", {}, [], "predict", None)]})
        frontend.send({"kind": "infer", "jobs": [job_to_wire(102, "r", {}, [], "predict", None)]})
        first = inbox.next()
        assert first["jobs"][0][0] == 101
        assert inbox.cancelled == set() and inbox.paused == set()
        inbox.running = [job_from_wire(job) for job in first["jobs"]]
        frontend.send({"kind": "cancel", "ids": [101, 102, 50]})  # running, waiting, finished
        frontend.send({"kind": "pause", "ids": [102]})
        assert inbox.is_cancelled(101) and inbox.is_cancelled(102) and not inbox.is_cancelled(50)
        assert inbox.cancelled == {101, 102} and inbox.paused == {102}
    finally:
        left.close()
        right.close()


def test_worker_main_does_not_know_torchserve() -> None:
    """Importing the worker loop imports no runtime: the TorchServe one comes with a ``load`` naming it."""
    script = (
        "import sys, workers.worker_main\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('workers.handler', 'workers.context', 'ts',"
        " 'workers.runtimes.', 'numpy')))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], check=True, timeout=60)


def test_a_json_body_is_decoded_as_torchserves_worker_does_utf8_text_then_json() -> None:
    from workers.handler_runner import decode_value

    assert decode_value("application/json", b'{"a": [1, 2.5]}', True) == {"a": [1, 2.5]}
    # TorchServe decodes UTF-8 and then parses: a BOM or a UTF-16 body is not JSON to it, and the handler gets the
    # bytes as sent ("Failed json decoding of input data. Forwarding encoded payload")
    for sent in (b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16"), b"[" * 100_000, b"\xff{}"):
        value = decode_value("application/json", sent, True)
        assert isinstance(value, bytearray) and value == sent
