"""Real gRPC clients of the Open Inference Protocol, each run in a process of its own by the e2e tests:
``python -m tests.grpc_clients KIND HOST:PORT`` (KIND: triton, triton-concurrent, kserve, cancel, client-cancel,
script-triton, script-kserve, torchserve, torchserve-management, torchserve-stream2, auth).
Exit status 0 when every check passed.

A process each because Triton's and KServe's generated modules both define ``inference.*`` in protobuf's default
descriptor pool, and one process cannot import both.
"""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np


def triton(url: str) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url=url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("kdummy") and client.is_model_ready("kdummy", "1.0")
    metadata = client.get_server_metadata()
    assert metadata.name == "modelserver" and "binary_tensor_data" in metadata.extensions
    model = client.get_model_metadata("kdummy")
    assert model.name == "kdummy" and list(model.versions) == ["1.0"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input-0", "INT32", [-1, 2])]

    data = np.arange(12, dtype=np.int32).reshape(6, 2)  # raw_input_contents (tritonclient always sends raw)
    tensor = grpcclient.InferInput("input-0", list(data.shape), "INT32")
    tensor.set_data_from_numpy(data)
    result = client.infer("kdummy", [tensor], request_id="abc", parameters={"answer": 42, "note": "hi"})
    np.testing.assert_array_equal(result.as_numpy("output-0"), data)
    response = result.get_response()
    assert response.id == "abc" and response.model_name == "kdummy" and response.model_version == "1.0"
    assert len(response.raw_output_contents) == 1
    assert response.parameters["answer"].int64_param == 42 and response.parameters["note"].string_param == "hi"

    big = np.arange(2 * 60000, dtype=np.int32).reshape(60000, 2)  # 480 KB: read and written around protobuf
    tensor = grpcclient.InferInput("input-0", list(big.shape), "INT32")
    tensor.set_data_from_numpy(big)
    result = client.infer("kdummy", [tensor], request_id="big", parameters={"answer": 7})
    np.testing.assert_array_equal(result.as_numpy("output-0"), big)
    response = result.get_response()
    assert response.id == "big" and response.parameters["answer"].int64_param == 7
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [("output-0", "INT32", [60000, 2])]
    for algorithm in ("gzip", "deflate"):  # a compressed request, as tritonclient sends it when told to
        result = client.infer("kdummy", [tensor], request_id=algorithm, compression_algorithm=algorithm)
        np.testing.assert_array_equal(result.as_numpy("output-0"), big)
        assert result.get_response().id == algorithm

    values = np.array([[6.8, 2.8], [4.8, 1.4]], dtype=np.float32)  # FP16 out, BYTES in and out (length-framed)
    fp32 = grpcclient.InferInput("fp32_input", [2, 2], "FP32")
    fp32.set_data_from_numpy(values)
    text = grpcclient.InferInput("str_input", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"cat", "dög".encode()], dtype=object))
    outputs = [grpcclient.InferRequestedOutput(name) for name in ("fp16_output", "str_output")]
    result = client.infer("kfp16", [fp32, text], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("fp16_output"), (values + 1).astype(np.float16))
    assert [v.decode() for v in result.as_numpy("str_output").ravel()] == ["CAT", "DÖG"]
    assert [o.name for o in result.get_response().outputs] == ["fp16_output", "str_output"]

    for call, code, words in (
        (lambda: client.infer("nope", [tensor]), "StatusCode.NOT_FOUND", "Model with name nope does not exist."),
        (lambda: client.infer("kdummy", [tensor], model_version="9"), "StatusCode.NOT_FOUND", "does not exist"),
        (lambda: client.get_model_metadata("nope"), "StatusCode.NOT_FOUND", "does not exist"),
        (lambda: client.infer("kdummy", [_short_tensor(grpcclient)]), "StatusCode.INVALID_ARGUMENT", "input-0"),
        (
            lambda: client.infer("kdummy", [tensor], outputs=[grpcclient.InferRequestedOutput("zzz")]),
            "StatusCode.INVALID_ARGUMENT",
            "Unexpected inference output 'zzz'",
        ),
    ):
        try:
            call()
        except InferenceServerException as err:
            assert err.status() == code and words in err.message(), (err.status(), err.message())
        else:
            raise AssertionError(f"no error; expected {code}")

    client.load_model("spare")  # Triton's repository messages (the name in field 2)
    assert client.is_model_ready("spare")
    client.unload_model("spare")
    try:
        client.is_model_ready("spare")
    except InferenceServerException as err:
        assert err.status() == "StatusCode.NOT_FOUND", err.status()
    else:
        raise AssertionError("an unloaded model is still known")
    client.close()


def triton_concurrent(url: str) -> None:
    """Large requests in flight together on one channel: their DATA frames interleave on one HTTP/2 connection, and
    each answer must be its own request's tensor."""
    import queue

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    answers: queue.Queue = queue.Queue()
    sent = {}
    for index in range(24):
        data = (np.arange(2 * 150_000, dtype=np.int32) * (index + 1)).reshape(150_000, 2)  # 1.2 MB each
        tensor = grpcclient.InferInput("input-0", list(data.shape), "INT32")
        tensor.set_data_from_numpy(data)
        sent[str(index)] = data
        client.async_infer(
            "kdummy", [tensor], callback=lambda result, error: answers.put((result, error)), request_id=str(index)
        )
    for _ in range(len(sent)):
        result, error = answers.get(timeout=60)
        assert error is None, error
        request_id = result.get_response().id
        np.testing.assert_array_equal(result.as_numpy("output-0"), sent.pop(request_id))
    assert not sent
    client.close()


def _short_tensor(grpcclient):
    tensor = grpcclient.InferInput("input-0", [3, 2], "INT32")
    tensor._raw_content = np.arange(4, dtype=np.int32).tobytes()  # 4 elements for a [3, 2] shape
    return tensor


def kserve(url: str) -> None:
    import grpc
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def run() -> None:
        client = InferenceGRPCClient(url, timeout=30)
        assert (await client.is_server_live()) and (await client.is_server_ready())
        assert await client.is_model_ready("kdummy")
        data = np.array([[1, 2], [3, 4]], dtype=np.int32)
        typed = InferInput("input-0", [2, 2], "INT32")  # typed contents (int_contents)
        typed.set_data_from_numpy(data, binary_data=False)
        response = await client.infer(InferRequest("kdummy", [typed], request_id="k1"))
        assert response.id == "k1" and response.model_name == "kdummy"
        np.testing.assert_array_equal(response.outputs[0].as_numpy(), data)
        raw = InferInput("input-0", [2, 2], "INT32")  # raw_input_contents
        raw.set_data_from_numpy(data, binary_data=True)
        response = await client.infer(InferRequest("kdummy", [raw], request_id="k2"))
        np.testing.assert_array_equal(response.outputs[0].as_numpy(), data)
        words = InferInput("str_input", [2], "BYTES")
        words.set_data_from_numpy(np.array([b"ab", b"cd"], dtype=object), binary_data=False)
        fp32 = InferInput("fp32_input", [1], "FP32")
        fp32.set_data_from_numpy(np.array([1.5], dtype=np.float32), binary_data=False)
        response = await client.infer(InferRequest("kfp16", [fp32, words]))
        by_name = {output.name: output for output in response.outputs}
        assert list(by_name["str_output"].as_numpy().ravel()) in ([b"AB", b"CD"], ["AB", "CD"])
        await client.close()
        # KServe's client has no load/unload: its generated stub sends KServe's messages (the name in field 1).
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

        async with grpc.aio.insecure_channel(url) as channel:
            stub = GRPCInferenceServiceStub(channel)
            loaded = await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="spare"))
            assert loaded.isLoaded and loaded.model_name == "spare"
            unloaded = await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="spare"))
            assert unloaded.isUnloaded and unloaded.model_name == "spare"

    asyncio.run(run())


def cancel(url: str) -> None:
    """A call whose deadline passes while the model sleeps 3 s: DEADLINE_EXCEEDED at the deadline, not at the end.
    Then wait past the model's 3 s, so that the test can read in the log whether the call was cancelled."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url=url)
    tensor = grpcclient.InferInput("input-0", [1], "FP32")
    tensor.set_data_from_numpy(np.array([3.0], dtype=np.float32))
    started = time.monotonic()
    try:
        client.infer("ksleepy", [tensor], client_timeout=0.5)
    except InferenceServerException as err:
        assert err.status() == "StatusCode.DEADLINE_EXCEEDED", (err.status(), err.message())
    else:
        raise AssertionError("the call outlived its deadline")
    assert time.monotonic() - started < 2.5
    time.sleep(3.5)


def client_cancel(url: str) -> None:
    """A call the client cancels (RST_STREAM) while the model sleeps 3 s: the callback gets CANCELLED. Then wait
    past the model's 3 s, so that the test can read in the log whether the call was cancelled."""
    import queue

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    tensor = grpcclient.InferInput("input-0", [1], "FP32")
    tensor.set_data_from_numpy(np.array([3.0], dtype=np.float32))
    done: queue.Queue = queue.Queue()
    call = client.async_infer("ksleepy", [tensor], lambda result, error: done.put(error))
    time.sleep(0.5)
    call.cancel()
    error = done.get(timeout=2.5)
    assert error is not None and "CANCELLED" in error.status(), error
    time.sleep(3.5)


def script_triton(url: str) -> None:
    """A KServe script's ``ModelServer(enable_grpc=True)``: raw FP32 and BYTES through Triton's client."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("doubler")
    assert [t.name for t in client.get_model_metadata("doubler").inputs] == ["x"]
    tensor = grpcclient.InferInput("x", [3], "FP32")
    tensor.set_data_from_numpy(np.array([1.0, 2.5, -3.0], dtype=np.float32))
    result = client.infer("doubler", [tensor])
    np.testing.assert_array_equal(result.as_numpy("output-0"), np.array([2.0, 5.0, -6.0], dtype=np.float32))
    told = result.get_response().parameters  # raw inputs: KServe's model sees from_grpc and binary outputs
    assert told["from_grpc"].bool_param and told["binary_outputs"].bool_param, told
    words = grpcclient.InferInput("x", [2], "BYTES")
    words.set_data_from_numpy(np.array([b"ab", "é".encode()], dtype=object))
    assert list(client.infer("doubler", [words]).as_numpy("output-0")) == [b"abab", "éé".encode()]
    client.close()


def script_kserve(url: str) -> None:
    """A KServe script's ``ModelServer(enable_grpc=True)``: typed contents through KServe's client."""
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def run() -> None:
        client = InferenceGRPCClient(url, timeout=30)
        assert await client.is_model_ready("doubler")
        tensor = InferInput("x", [2], "FP32")
        tensor.set_data_from_numpy(np.array([1.5, 4.0], dtype=np.float32), binary_data=False)
        response = await client.infer(InferRequest("doubler", [tensor], request_id="s1"))
        assert response.id == "s1"
        assert response.parameters["from_grpc"].bool_param and not response.parameters["binary_outputs"].bool_param
        np.testing.assert_array_equal(response.outputs[0].as_numpy(), np.array([3.0, 8.0], dtype=np.float32))
        await client.close()

    asyncio.run(run())


def auth(url: str, key: str, management_url: str = "", management_key: str = "") -> None:
    """Token authorization on: UNAUTHENTICATED without the inference key, served with it; TorchServe's gRPC
    management API likewise with the management key (and not with the inference key)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url=url)
    for headers in (None, {"authorization": "Bearer wrong"}):
        try:
            client.is_server_live(headers=headers)
        except InferenceServerException as err:
            assert err.status() == "StatusCode.UNAUTHENTICATED", err.status()
        else:
            raise AssertionError("served without the inference key")
    headers = {"authorization": f"Bearer {key}"}
    assert client.is_server_live(headers=headers)
    tensor = grpcclient.InferInput("input-0", [1, 2], "INT32")
    tensor.set_data_from_numpy(np.array([[1, 2]], dtype=np.int32))
    np.testing.assert_array_equal(client.infer("kdummy", [tensor], headers=headers).as_numpy("output-0"), [[1, 2]])
    client.close()
    if management_url:
        import grpc

        _generate_torchserve_stubs()
        import ts_management_pb2 as pb
        import ts_management_pb2_grpc as pb_grpc

        with grpc.insecure_channel(management_url) as channel:
            stub = pb_grpc.ManagementAPIsServiceStub(channel)
            for metadata in ((), (("authorization", f"Bearer {key}"),)):
                try:
                    stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.code()
                else:
                    raise AssertionError("management served without the management key")
            listed = stub.ListModels(pb.ListModelsRequest(), metadata=(("authorization", f"Bearer {management_key}"),))
            assert "kdummy" in listed.msg


def _generate_torchserve_stubs() -> None:
    """Python stubs for TorchServe's protos, generated by grpcio-tools into a fresh directory on sys.path."""
    import tempfile
    from pathlib import Path

    from grpc_tools import protoc

    protos = Path(__file__).resolve().parent.parent / "workers" / "protos"
    out = tempfile.mkdtemp()
    well_known = Path(protoc.__file__).parent / "_proto"
    files = [protos / "ts_inference.proto", protos / "ts_management.proto"]
    files += [protos / "google" / "rpc" / "status.proto", protos / "google" / "rpc" / "error_details.proto"]
    command = ["protoc", f"-I{protos}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main(command + [str(path) for path in files]) == 0
    sys.path.insert(0, out)


def torchserve_management(url: str) -> None:
    """TorchServe's gRPC management API with a generated client: list, register, scale, describe, set default,
    unregister, and TorchServe's errors."""
    import json

    import grpc

    _generate_torchserve_stubs()
    import ts_management_pb2 as pb
    import ts_management_pb2_grpc as pb_grpc

    def fails(call, request, code, details) -> None:
        try:
            call(request)
        except grpc.RpcError as err:
            assert err.code() == code and err.details() == details, (err.code(), err.details())
        else:
            raise AssertionError(f"no error; expected {code}")

    with grpc.insecure_channel(url) as channel:
        stub = pb_grpc.ManagementAPIsServiceStub(channel)
        listed = json.loads(stub.ListModels(pb.ListModelsRequest()).msg)
        assert [m["modelName"] for m in listed["models"]] == ["tsgrpc"]
        answer = stub.RegisterModel(pb.RegisterModelRequest(url="mirror", initial_workers=1, synchronous=True))
        assert answer.msg == 'Model "mirror" Version: 1.0 registered with 1 initial workers', answer.msg
        answer = stub.ScaleWorker(pb.ScaleWorkerRequest(model_name="mirror", min_worker=2, synchronous=True))
        assert answer.msg == "Workers scaled to 2 for model: mirror", answer.msg
        described = json.loads(stub.DescribeModel(pb.DescribeModelRequest(model_name="mirror")).msg)
        assert described[0]["modelName"] == "mirror" and len(described[0]["workers"]) == 2
        answer = stub.SetDefault(pb.SetDefaultRequest(model_name="mirror", model_version="1.0"))
        assert answer.msg == 'Default version successfully updated for model "mirror" to "1.0"', answer.msg
        fails(
            stub.SetDefault,
            pb.SetDefaultRequest(model_name="mirror", model_version="9"),
            grpc.StatusCode.NOT_FOUND,
            "Model version 9 does not exist for model mirror\n"
            "org.pytorch.serve.archive.model.ModelVersionNotFoundException",
        )
        fails(
            stub.RegisterModel,
            pb.RegisterModelRequest(url="mirror", synchronous=True),
            grpc.StatusCode.ABORTED,
            "Model version 1.0 is already registered for model mirror\norg.pytorch.serve.http.ConflictStatusException",
        )
        answer = stub.UnregisterModel(pb.UnregisterModelRequest(model_name="mirror"))
        assert answer.msg == 'Model "mirror" unregistered', answer.msg
        fails(
            stub.DescribeModel,
            pb.DescribeModelRequest(model_name="mirror"),
            grpc.StatusCode.NOT_FOUND,
            "Model not found: mirror\norg.pytorch.serve.archive.model.ModelNotFoundException",
        )
        fails(
            stub.UnregisterModel,
            pb.UnregisterModelRequest(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Parameter url is required.\norg.pytorch.serve.http.BadRequestException",
        )


def torchserve(url: str) -> None:
    """TorchServe's gRPC inference API, with a client generated by grpcio-tools from the ``.proto`` (as TorchServe's
    own ``torchserve_grpc_client.py`` is): Ping, Predictions, StreamPredictions and TorchServe's errors."""
    import json
    import tempfile
    from pathlib import Path

    import grpc
    from grpc_tools import protoc

    protos = Path(__file__).resolve().parent.parent / "workers" / "protos"
    out = tempfile.mkdtemp()
    well_known = Path(protoc.__file__).parent / "_proto"
    assert (
        protoc.main(
            ["protoc", f"-I{protos}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
            + [str(protos / "ts_inference.proto"), str(protos / "google" / "rpc" / "status.proto")]
        )
        == 0
    )
    sys.path.insert(0, out)
    import ts_inference_pb2 as pb
    import ts_inference_pb2_grpc as pb_grpc
    from google.protobuf import empty_pb2

    with grpc.insecure_channel(url) as channel:
        stub = pb_grpc.InferenceAPIsServiceStub(channel)
        assert json.loads(stub.Ping(empty_pb2.Empty()).health) == {"status": "Healthy"}
        answer = stub.Predictions(pb.PredictionsRequest(model_name="tsgrpc", input={"spec": b"{}", "data": b"\xff"}))
        assert json.loads(answer.prediction) == {"inputs": {"data": "bytearray", "spec": "bytearray"}, "spec": {}}
        request = pb.PredictionsRequest(model_name="tsgrpc", model_version="1.0", input={"spec": b'{"count": 3}'})
        pieces = [response.prediction for response in stub.StreamPredictions(request)]
        assert pieces[:3] == [b"piece-0", b"piece-1", b"piece-2"] and len(pieces) == 4, pieces
        assert json.loads(pieces[3])["spec"] == {"count": 3}
        first = stub.Predictions(request)  # a unary call gets the first piece, as from TorchServe
        assert first.prediction == b"piece-0"
        for request, code, details in (
            (pb.PredictionsRequest(model_name="nope"), grpc.StatusCode.INTERNAL, "Model not found: nope\norg.pytorch"),
            (
                pb.PredictionsRequest(model_name="tsgrpc", model_version="9"),
                grpc.StatusCode.INTERNAL,
                "Model version: 9 does not exist for model: tsgrpc\norg.pytorch.serve.archive.model.ModelVersionNot",
            ),
            (pb.PredictionsRequest(), grpc.StatusCode.INTERNAL, "Parameter model_name is required.\nBadRequest"),
            (
                pb.PredictionsRequest(model_name="tsgrpc", input={"spec": b'{"fail": true}'}),
                grpc.StatusCode.UNAVAILABLE,  # a handler's exception is TorchServe's 503
                "Prediction failed\norg.pytorch.serve.http.InternalServerException",
            ),
        ):
            for call in (stub.Predictions, lambda r: list(stub.StreamPredictions(r))):
                try:
                    call(request)
                except grpc.RpcError as err:
                    assert err.code() == code and details in err.details(), (err.code(), err.details())
                else:
                    raise AssertionError(f"no error; expected {code}")


def torchserve_stream2(url: str) -> None:
    """TorchServe's StreamPredictions2 with a client generated from the protos: each request's responses in order,
    intermediate ones first; a failed request answered by a response with its status (code, message, ErrorInfo
    reason) and the stream going on; the handler told the sequence's id."""
    import json

    import grpc

    _generate_torchserve_stubs()
    import ts_inference_pb2 as pb
    import ts_inference_pb2_grpc as pb_grpc
    from google.rpc import error_details_pb2

    requests = [
        pb.PredictionsRequest(model_name="tsgrpc", sequenceId="seq-1", input={"spec": b'{"count": 2}'}),
        pb.PredictionsRequest(model_name="nope", sequenceId="seq-1"),
        pb.PredictionsRequest(model_name="tsgrpc", input={"spec": b"{}"}),
        pb.PredictionsRequest(model_name="tsgrpc", sequenceId="seq-1", input={"spec": b'{"fail": true}'}),
        pb.PredictionsRequest(model_name="", sequenceId="seq-1"),
        pb.PredictionsRequest(model_name="tsgrpc", model_version="1.0", sequenceId="seq-1", input={"spec": b"{}"}),
        pb.PredictionsRequest(model_name="tsgrpc", input={"ts_request_sequence_start": b"true"}),
    ]

    def failure(response) -> tuple[int, str, str]:
        assert not response.prediction and response.HasField("status"), response
        [detail] = response.status.details
        info = error_details_pb2.ErrorInfo()
        assert detail.Unpack(info), detail.type_url
        return response.status.code, response.status.message, info.reason

    with grpc.insecure_channel(url) as channel:
        stub = pb_grpc.InferenceAPIsServiceStub(channel)
        responses = list(stub.StreamPredictions2(iter(requests)))
    assert len(responses) == 9, responses
    assert [r.prediction for r in responses[:2]] == [b"piece-0", b"piece-1"]
    first = json.loads(responses[2].prediction)
    assert first["sequence"] == "seq-1" and first["spec"] == {"count": 2} and not first["start"], first
    not_found = "org.pytorch.serve.archive.model.ModelNotFoundException"
    assert failure(responses[3]) == (grpc.StatusCode.INTERNAL.value[0], "Model not found: nope", not_found)
    assert failure(responses[4]) == (13, "Parameter sequenceId is required.", "BadRequestException.()")
    assert failure(responses[5]) == (
        grpc.StatusCode.UNAVAILABLE.value[0],  # a handler's exception: TorchServe's 503
        "Prediction failed",
        "org.pytorch.serve.http.InternalServerException",
    )
    assert failure(responses[6]) == (13, "Parameter model_name is required.", "BadRequestException.()")
    assert json.loads(responses[7].prediction)["sequence"] == "seq-1"
    started = json.loads(responses[8].prediction)
    assert started["sequence"].startswith("ts-seq-") and started["start"] == "true", started


if __name__ == "__main__":
    clients = {"triton": triton, "kserve": kserve, "cancel": cancel, "client-cancel": client_cancel}
    clients.update({"script-triton": script_triton, "script-kserve": script_kserve})
    clients.update({"auth": auth, "torchserve": torchserve, "torchserve-management": torchserve_management})
    clients["torchserve-stream2"] = torchserve_stream2
    clients["triton-concurrent"] = triton_concurrent
    clients[sys.argv[1]](*sys.argv[2:])
    print("ok")
