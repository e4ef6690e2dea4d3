"""workers.kserve_api's Model pipeline, its default predict/explain forwarding (against a real local aiohttp
server), ModelRepository, the helpers of utils, the errors' statuses and the command-line parser."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientConnectorError, web
from multidict import CIMultiDict

from workers.kserve_api import (
    HTTPStatusError,
    InferenceError,
    InferenceVerb,
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    InvalidInput,
    Model,
    ModelNotFound,
    ModelNotReady,
    ModelRepository,
    NoModelReady,
    PredictorConfig,
    RequestedOutput,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
    rest_client,
    set_predictor_config,
    status_of,
)
from workers.kserve_api.server_args import parse_known_args, parser
from workers.kserve_api.utils import get_predict_input, get_predict_response, strtobool


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        try:
            return await asyncio.wait_for(coro, 20)
        finally:
            await rest_client.close_clients()

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def no_global_config():
    set_predictor_config(None)
    yield
    set_predictor_config(None)


# -- errors -----------------------------------------------------------------------------------------


def test_error_messages_and_statuses() -> None:
    model = type("M", (), {"name": "a"})()
    other = type("M", (), {"name": "b"})()
    cases = [
        (InvalidInput("bad"), "bad", 400),
        (InferenceError("broke"), "broke", 500),
        (InferenceError("broke", status="422"), "[422] broke", 500),
        (ModelNotFound("m"), "Model with name m does not exist.", 404),
        (ModelNotReady("m"), "Model with name m is not ready.", 503),
        (ModelNotReady("m", "Error: x"), "Model with name m is not ready. Error: x", 503),
        (UnsupportedProtocol("grpc-v2"), "Unsupported protocol grpc-v2.", 501),
        (ServerNotReady(), "Server is not ready.", 503),
        (ServerNotLive(), "Server is not live.", 503),
        (NoModelReady([model]), "Model with name a is not ready.", 500),
        (NoModelReady([model, other]), "Models with names a,b are not ready.", 500),
        (NotImplementedError("nope"), "nope", 501),
        (KeyError("k"), "'k'", 500),
    ]
    for exc, message, status in cases:
        assert (str(exc), status_of(exc)) == (message, status)
    assert InvalidInput.status == 400 and ModelNotFound.status == 404 and ModelNotReady.status == 503
    assert InferenceError("x").status == 500  # the class's, unless KServe's own status argument was given
    assert isinstance(InvalidInput("x"), ValueError)


# -- the pipeline -----------------------------------------------------------------------------------


class Recorder(Model):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.calls: list[tuple[str, Any, Any]] = []

    def preprocess(self, payload: Any, headers: Any = None) -> Any:
        self.calls.append(("preprocess", payload, headers))
        return {"instances": [*payload["instances"], "pre"]}

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        self.calls.append(("predict", payload, response_headers))
        if response_headers is not None:
            response_headers["x-predicted"] = "yes"
        return {"predictions": payload["instances"]}

    def explain(self, payload: Any, headers: Any = None) -> Any:
        self.calls.append(("explain", payload, headers))
        return {"explanations": len(payload["instances"])}

    async def postprocess(self, result: Any, headers: Any = None, response_headers: Any = None) -> Any:
        self.calls.append(("postprocess", result, response_headers))
        if response_headers is not None:
            response_headers["x-post"] = "1"
        return {**result, "post": True}


def test_call_runs_sync_and_async_hooks_in_order() -> None:
    model = Recorder("m")
    headers = {"x-request-id": "abc"}
    response, response_headers = run(model({"instances": [1]}, headers))
    assert response == {"predictions": [1, "pre"], "post": True} and response_headers == {}
    assert [call[0] for call in model.calls] == ["preprocess", "predict", "postprocess"]
    assert model.calls[0] == ("preprocess", {"instances": [1]}, headers)
    assert model.calls[1][2] is None  # predict got no response_headers argument
    model.calls.clear()
    response, _ = run(model({"instances": [1, 2]}, None, InferenceVerb.EXPLAIN))
    assert response == {"explanations": 3, "post": True}
    assert [call[0] for call in model.calls] == ["preprocess", "explain", "postprocess"]


def test_return_response_headers_passes_a_dict_to_predict_and_postprocess() -> None:
    model = Recorder("m", return_response_headers=True)
    assert model.required_response_headers is True
    response, response_headers = run(model({"instances": []}))
    assert response_headers == {"x-predicted": "yes", "x-post": "1"}
    assert model.calls[1][2] is response_headers and model.calls[2][2] is response_headers


def test_model_attributes_and_old_constructor_forms() -> None:
    model = Model("m")
    assert (model.name, model.ready, model.engine, model.explainer_host) == ("m", False, False, None)
    assert model.enable_latency_logging is False and model.predictor_config is None
    assert model.load() is True and model.ready is True and run(model.healthy()) is True
    model.stop()
    assert model.ready is False
    model.start()
    assert model.ready is True
    config = PredictorConfig("host:1")
    assert Model("m", config).predictor_config is config and Model("m", config).required_response_headers is False
    assert Model("m", config, True).required_response_headers is True
    assert Model("m", predictor_config=config).predictor_config is config
    set_predictor_config(PredictorConfig("global:2"))
    assert Model("m").predictor_config.predictor_host == "global:2"
    assert model.get_input_types() == [] and model.get_output_types() == []


def test_validate_rejects_non_list_instances_and_inputs() -> None:
    model = Model("m")

    async def echo(payload: Any, headers: Any = None) -> Any:
        return payload

    model.predict = echo
    with pytest.raises(InvalidInput, match='^Expected "instances" to be a list$'):
        run(model({"instances": {"a": 1}}))
    assert run(model({"inputs": 1}))[0] == {"inputs": 1}  # v1 checks only "instances"
    assert run(model(b"raw body"))[0] == b"raw body"
    set_predictor_config(PredictorConfig(None, "v2"))
    with pytest.raises(InvalidInput, match='^Expected "inputs" to be a list$'):
        run(model({"inputs": "x"}))
    request = InferRequest("m", [InferInput("a", [1], "INT32", data=[1])])
    assert run(model(request))[0] is request


def test_latency_log_line_on_the_trace_logger() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    trace = logging.getLogger("kserve.trace")
    trace.addHandler(handler)
    level = trace.level
    trace.setLevel(logging.INFO)
    try:
        model = Recorder("m")
        run(model({"instances": []}, {"x-request-id": "rid-7"}))
        assert records == []
        model.enable_latency_logging = True
        run(model({"instances": []}, {"x-request-id": "rid-7"}))
        run(model({"instances": []}, None, InferenceVerb.EXPLAIN))
    finally:
        trace.removeHandler(handler)
        trace.setLevel(level)
    number = r"\d+(\.\d+)?(e-\d+)?"
    assert re.fullmatch(
        f"requestId: rid-7, preprocess_ms: {number}, explain_ms: 0, predict_ms: {number}, postprocess_ms: {number}",
        records[0].getMessage(),
    )
    assert re.fullmatch(
        f"requestId: N.A., preprocess_ms: {number}, explain_ms: {number}, predict_ms: 0, postprocess_ms: {number}",
        records[1].getMessage(),
    )


def test_default_predict_and_explain_without_a_predictor() -> None:
    model = Model("m")
    with pytest.raises(NotImplementedError, match="^Could not find PredictorConfig.$") as caught:
        run(model({"instances": [1]}))
    assert status_of(caught.value) == 501
    set_predictor_config(PredictorConfig(None))
    with pytest.raises(NotImplementedError, match="^Could not find predictor_host.$"):
        run(model({"instances": [1]}))
    with pytest.raises(NotImplementedError, match="^Could not find explainer_host.$"):
        run(model({"instances": [1]}, None, InferenceVerb.EXPLAIN))
    set_predictor_config(PredictorConfig("host:1", "grpc-v2"))
    with pytest.raises(UnsupportedProtocol, match="^Unsupported protocol grpc-v2.$"):
        run(model({"instances": [1]}))


def test_an_async_iterator_from_predict_is_passed_through() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    class Streamer(Model):
        def predict(self, payload: Any, headers: Any = None) -> Any:
            return stream

    stream = chunks()
    response, _ = run(Streamer("s")({"instances": []}))
    assert response is stream
    run(stream.aclose())


# -- forwarding to a predictor ----------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve(handler: Handler, port: int = 0) -> tuple[web.AppRunner, str]:
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"127.0.0.1:{bound}"


class Predictor:
    """Records each request; answers with ``reply(request, body)``."""

    def __init__(self, reply: Callable[[web.Request, bytes], web.Response]) -> None:
        self.reply = reply
        self.seen: list[tuple[str, str, CIMultiDict[str], bytes]] = []

    async def __call__(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.method, request.path, CIMultiDict(request.headers), body))
        return self.reply(request, body)


CLIENT_HEADERS = {
    "x-request-id": "rid",
    "x-b3-traceid": "trace",
    "authorization": "Bearer t",
    "cookie": "secret",
    "x-other": "no",
    "content-type": "application/json",
}


def test_v1_forwarding_posts_json_with_only_the_forwardable_headers() -> None:
    predictor = Predictor(lambda request, body: web.json_response({"predictions": json.loads(body)["instances"]}))

    async def scenario() -> Any:
        runner, host = await serve(predictor)
        try:
            set_predictor_config(PredictorConfig(host))
            return await Model("iris")({"instances": [[1, 2]]}, dict(CLIENT_HEADERS))
        finally:
            await runner.cleanup()

    response, response_headers = run(scenario())
    assert response == {"predictions": [[1, 2]]} and response_headers == {}
    [(method, path, headers, body)] = predictor.seen
    assert (method, path, json.loads(body)) == ("POST", "/v1/models/iris:predict", {"instances": [[1, 2]]})
    assert headers["Content-Type"] == "application/json"
    assert (headers["x-request-id"], headers["x-b3-traceid"], headers["authorization"]) == ("rid", "trace", "Bearer t")
    assert "cookie" not in headers and "x-other" not in headers


def test_v2_forwarding_json_and_response_headers() -> None:
    def reply(request: web.Request, body: bytes) -> web.Response:
        sent = json.loads(body)
        doubled = [2 * value for value in sent["inputs"][0]["data"]]
        answer = {
            "id": sent["id"],
            "model_name": "m",
            "outputs": [{"name": "y", "shape": [2], "datatype": "INT32", "data": doubled}],
        }
        return web.json_response(answer, headers={"x-from-predictor": "p"})

    predictor = Predictor(reply)

    class Transformer(Model):
        def __init__(self) -> None:
            super().__init__("m", return_response_headers=True)

    async def scenario() -> Any:
        runner, host = await serve(predictor)
        try:
            set_predictor_config(PredictorConfig(host, "v2"))
            request = InferRequest("m", [InferInput("x", [2], "INT32", data=[3, 4])], request_id="r-1")
            return await Transformer()(request, {"x-request-id": "rid"})
        finally:
            await runner.cleanup()

    response, response_headers = run(scenario())
    assert isinstance(response, InferResponse)
    assert response.id == "r-1" and response.outputs == [InferOutput("y", [2], "INT32", data=[6, 8])]
    assert response_headers["x-from-predictor"] == "p" and response_headers["content-type"].startswith(
        "application/json"
    )
    [(_, path, headers, body)] = predictor.seen
    assert path == "/v2/models/m/infer" and headers.getall("content-type") == ["application/json"]
    assert "inference-header-content-length" not in headers and json.loads(body)["id"] == "r-1"


def test_v2_forwarding_binary_both_ways() -> None:
    def reply(request: web.Request, body: bytes) -> web.Response:
        json_length = int(request.headers["inference-header-content-length"])
        parsed = InferRequest.from_bytes(body, json_length, "m")
        values = parsed.inputs[0].as_numpy().astype(np.float32) * 2
        output = InferOutput("y", [2], "FP32")
        output.set_data_from_numpy(values)
        answer, length = InferResponse(parsed.id, "m", [output], use_binary_outputs=True).to_rest()
        return web.Response(body=answer, headers={"inference-header-content-length": str(length)})

    predictor = Predictor(reply)

    async def scenario() -> Any:
        runner, host = await serve(predictor)
        try:
            set_predictor_config(PredictorConfig(host, "v2"))
            half = InferInput("x", [2], "FP16")
            half.set_data_from_numpy(np.array([1.5, -2.0], dtype=np.float16))
            return await Model("m")(InferRequest("m", [half], request_id="b-1"), {"x-request-id": "rid"})
        finally:
            await runner.cleanup()

    response, _ = run(scenario())
    assert response.id == "b-1" and response.outputs[0].data == [3.0, -4.0]
    [(_, _, headers, body)] = predictor.seen
    assert headers.getall("content-type") == ["application/octet-stream"]
    json_length = int(headers["inference-header-content-length"])
    assert json.loads(body[:json_length])["inputs"][0]["parameters"] == {"binary_data_size": 4}
    assert body[json_length:] == np.array([1.5, -2.0], dtype="<f2").tobytes()


def test_a_non_2xx_predictor_answer_is_an_http_status_error() -> None:
    def reply(request: web.Request, body: bytes) -> web.Response:
        if request.path.endswith("plain:predict"):
            return web.Response(status=502, text="bad gateway")
        return web.json_response({"error": "boom"}, status=500)

    async def scenario() -> tuple[BaseException, BaseException, str]:
        runner, host = await serve(Predictor(reply))
        try:
            set_predictor_config(PredictorConfig(host))
            errors = []
            for name in ("json", "plain"):
                try:
                    await Model(name)({"instances": [1]})
                except HTTPStatusError as err:
                    errors.append(err)
            return errors[0], errors[1], host
        finally:
            await runner.cleanup()

    json_error, plain_error, host = run(scenario())
    assert str(json_error) == f"boom, '500 Internal Server Error' for url 'http://{host}/v1/models/json:predict'"
    assert str(plain_error) == f", '502 Bad Gateway' for url 'http://{host}/v1/models/plain:predict'"
    assert (json_error.status_code, plain_error.body, status_of(json_error)) == (500, b"bad gateway", 500)


@pytest.mark.parametrize("retries", [0, 2])
def test_connection_failures_are_retried(monkeypatch: pytest.MonkeyPatch, retries: int) -> None:
    monkeypatch.setattr(rest_client, "RETRY_BACKOFF", 0.4)
    predictor = Predictor(lambda request, body: web.json_response({"predictions": [1]}))
    port = free_port()

    async def scenario() -> Any:
        set_predictor_config(PredictorConfig(f"127.0.0.1:{port}", predictor_request_retries=retries))
        starting = asyncio.create_task(_serve_later(predictor, port))
        try:
            return await Model("m")({"instances": [1]})
        finally:
            runner = await starting
            await runner.cleanup()

    if retries == 0:
        with pytest.raises(ClientConnectorError):
            run(scenario())
        assert predictor.seen == []
    else:  # at once: refused; after 0.4 s: the server is up
        assert run(scenario())[0] == {"predictions": [1]}
        assert len(predictor.seen) == 1


async def _serve_later(handler: Handler, port: int) -> web.AppRunner:
    await asyncio.sleep(0.15)
    runner, _ = await serve(handler, port)
    return runner


def test_explain_posts_to_the_explainer() -> None:
    explainer = Predictor(lambda request, body: web.json_response({"explanations": json.loads(body)}))

    async def scenario() -> Any:
        runner, host = await serve(explainer)
        try:
            model = Model("m")
            model.explainer_host = host
            return await model(
                {"instances": [5]}, {"content-type": "application/json", "x-request-id": "e"}, InferenceVerb.EXPLAIN
            )
        finally:
            await runner.cleanup()

    response, _ = run(scenario())
    assert response == {"explanations": {"instances": [5]}}
    [(_, path, headers, _)] = explainer.seen
    assert path == "/v1/models/m:explain" and headers["x-request-id"] == "e"


# -- ModelRepository --------------------------------------------------------------------------------


class Engine(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.engine = True
        self.events: list[str] = []

    def stop(self) -> None:
        self.events.append("stop")
        super().stop()

    def stop_engine(self) -> None:
        self.events.append("stop_engine")


def test_model_repository() -> None:
    repository = ModelRepository()
    assert repository.models_dir == "/mnt/models" and repository.get_models() == {}
    first, second = Model("a"), Engine("b")
    first.load()
    repository.update(first)
    repository.update(second)
    repository.update(first, "alias")
    assert list(repository.get_models()) == ["a", "b", "alias"]
    assert repository.get_model("alias") is first and repository.get_model("zzz") is None
    assert run(repository.is_model_ready("a")) is True
    assert run(repository.is_model_ready("b")) is False and run(repository.is_model_ready("zzz")) is False
    assert repository.load("a") is None
    repository.unload("b")
    assert second.events == ["stop", "stop_engine"] and "b" not in repository.get_models()
    with pytest.raises(ModelNotFound, match="^Model with name b does not exist.$") as caught:
        repository.unload("b")
    assert isinstance(caught.value, KeyError) and status_of(caught.value) == 404


# -- utils ------------------------------------------------------------------------------------------


def test_get_predict_input() -> None:
    assert get_predict_input({"instances": [[1, 2]]}).tolist() == [[1, 2]]
    assert get_predict_input({"inputs": ["a", "b"], "instances": [1]}) == ["a", "b"]
    assert get_predict_input({"instances": []}).shape == (0,)
    words = InferRequest("m", [InferInput("w", [2], "BYTES", data=["x", "y"])])
    assert get_predict_input(words) == ["x", "y"]
    numbers = InferRequest("m", [InferInput("n", [1, 2], "FP32", data=[1, 2])])
    assert get_predict_input(numbers).dtype == np.float32
    with pytest.raises(InvalidInput, match="unsupported payload type"):
        get_predict_input("text")


def test_get_predict_input_records_need_pandas() -> None:
    pd = pytest.importorskip("pandas")
    frame = get_predict_input({"instances": [[{"a": 1, "b": 2}, {"a": 3, "b": 4}]]})
    assert isinstance(frame, pd.DataFrame) and frame["a"].tolist() == [1, 3]
    columns = get_predict_input({"instances": [{"a": [1], "b": [2]}, {"a": [3], "b": [4]}]}, columns=["b"])
    assert columns.to_dict("list") == {"b": [2, 4]}
    request = InferRequest("m", [InferInput("a", [2], "INT32", data=[1, 2])], parameters={"content_type": "pd"})
    assert get_predict_input(request)["a"].tolist() == [1, 2]


def test_get_predict_response_v1_and_v2() -> None:
    assert get_predict_response({"instances": []}, np.array([[1, 2]]), "m") == {"predictions": [[1, 2]]}
    assert get_predict_response({"instances": []}, ["a"], "m") == {"predictions": ["a"]}
    request = InferRequest(
        "m",
        [InferInput("x", [1], "INT32", data=[1])],
        request_id="req-5",
        parameters={"binary_data_output": True},
        request_outputs=[RequestedOutput("output-0", {"binary_data": True})],
    )
    response = get_predict_response(request, np.array([[1.0, 2.0]], dtype=np.float32), "m")
    assert response.id == "req-5" and response.model_name == "m"
    assert response._use_binary_outputs is True and response._requested_outputs == request.request_outputs
    [output] = response.outputs
    assert (output.name, output.shape, output.datatype) == ("output-0", [1, 2], "FP32")
    body, json_length = response.to_rest()
    assert body[json_length:] == np.array([1, 2], dtype="<f4").tobytes()
    words = get_predict_response(InferRequest("m", []), ["a", "b"], "m")
    assert words.id and words.outputs == [InferOutput("output-0", [2], "BYTES", data=["a", "b"])]


def test_get_predict_response_dataframe_columns() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"label": ["x", "y"], "score": np.array([0.5, 0.25], dtype=np.float64)})
    response = get_predict_response(InferRequest("m", [], request_id="i"), frame, "m")
    assert [(o.name, o.datatype, o.shape, o.data) for o in response.outputs] == [
        ("label", "BYTES", [2], ["x", "y"]),
        ("score", "FP64", [2], [0.5, 0.25]),
    ]
    assert get_predict_response({"instances": []}, frame, "m") == {
        "predictions": [{"label": "x", "score": 0.5}, {"label": "y", "score": 0.25}]
    }


# -- the command line -------------------------------------------------------------------------------


def test_parser_defaults() -> None:
    args = vars(parser.parse_args([]))
    assert args == {
        "http_port": 8080,
        "grpc_port": 8081,
        "workers": 1,
        "max_threads": 4,
        "max_asyncio_workers": None,
        "enable_grpc": True,
        "enable_docs_url": False,
        "enable_latency_logging": True,
        "configure_logging": True,
        "log_config_file": None,
        "access_log_format": None,
        "event_loop": "auto",
        "timeout_keep_alive": 65,
        "model_name": "model",
        "predictor_host": None,
        "protocol": "v1",
        "predictor_protocol": "v1",
        "predictor_use_ssl": False,
        "predictor_request_timeout_seconds": 600,
        "grpc_max_send_message_length": 8388608,
        "grpc_max_receive_message_length": 8388608,
        "predictor_request_retries": 0,
        "enable_predictor_health_check": False,
        "ssl_certfile": args["ssl_certfile"],
        "ssl_keyfile": args["ssl_keyfile"],
    }
    assert parser.add_help is False


def test_parser_booleans_choices_and_parents(capsys: pytest.CaptureFixture[str]) -> None:
    for word, value in [
        ("y", True),
        ("YES", True),
        ("t", True),
        ("on", True),
        ("1", True),
        ("no", False),
        ("Off", False),
        ("0", False),
    ]:
        assert parser.parse_args(["--enable_grpc", word]).enable_grpc is value
        assert strtobool(word) is value
    with pytest.raises(ValueError, match="invalid truth value 'maybe'"):
        strtobool("maybe")
    with pytest.raises(SystemExit):
        parser.parse_args(["--enable_docs_url", "maybe"])
    assert "invalid strtobool value: 'maybe'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--predictor_protocol", "v3"])
    args = parser.parse_args(["--event-loop", "uvloop", "--timeout-keep-alive", "5", "--enable_predictor_health_check"])
    assert (args.event_loop, args.timeout_keep_alive, args.enable_predictor_health_check) == ("uvloop", 5, True)
    script = argparse.ArgumentParser(parents=[parser])
    script.add_argument("--model_dir", default="/mnt/models")
    mine = script.parse_args(["--model_name", "iris", "--model_dir", "/tmp"])
    assert (mine.model_name, mine.model_dir, mine.http_port) == ("iris", "/tmp", 8080)
    assert parse_known_args(["--http_port", "1", "--unknown", "x"]).http_port == 1
