"""The ``.proto`` files keep the published wire names: package, service, method names and every field's number
(the expectations are the published protocols' numbers: KServe 0.21's and Triton's grpc_predict_v2, TorchServe
0.12's inference.proto)."""

from __future__ import annotations

import pytest

pytest.importorskip("grpc_tools")

from workers import grpc_stubs


def fields(message) -> dict[str, int]:
    return {field.name: field.number for field in message.DESCRIPTOR.fields}


def test_open_inference_protocol_numbers() -> None:
    pb = grpc_stubs.load("oip_inference")
    methods = [name for name, *_ in pb.services["inference.GRPCInferenceService"]]
    assert methods == [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "RepositoryModelLoad", "RepositoryModelUnload",
    ]  # fmt: skip
    assert fields(pb.ModelInferRequest) == {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5, "outputs": 6,
        "raw_input_contents": 7,
    }  # fmt: skip
    assert fields(pb.ModelInferResponse) == {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "outputs": 5, "raw_output_contents": 6,
    }  # fmt: skip
    tensor = {"name": 1, "datatype": 2, "shape": 3, "parameters": 4, "contents": 5}
    assert fields(pb.messages["ModelInferRequest.InferInputTensor"]) == tensor
    assert fields(pb.messages["ModelInferResponse.InferOutputTensor"]) == tensor
    assert fields(pb.messages["ModelInferRequest.InferRequestedOutputTensor"]) == {"name": 1, "parameters": 2}
    assert fields(pb.InferTensorContents) == {
        "bool_contents": 1, "int_contents": 2, "int64_contents": 3, "uint_contents": 4, "uint64_contents": 5,
        "fp32_contents": 6, "fp64_contents": 7, "bytes_contents": 8,
    }  # fmt: skip
    assert fields(pb.InferParameter) == {
        "bool_param": 1, "int64_param": 2, "string_param": 3, "double_param": 4, "uint64_param": 5,
    }  # fmt: skip
    assert fields(pb.ModelMetadataResponse) == {"name": 1, "versions": 2, "platform": 3, "inputs": 4, "outputs": 5}
    assert fields(pb.ServerMetadataResponse) == {"name": 1, "version": 2, "extensions": 3}
    assert fields(pb.ModelReadyRequest) == fields(pb.ModelMetadataRequest) == {"name": 1, "version": 2}
    assert fields(pb.RepositoryModelLoadResponse) == {"model_name": 1, "isLoaded": 2}


def test_torchserve_inference_numbers() -> None:
    pb = grpc_stubs.load("ts_inference")
    assert pb.package == "org.pytorch.serve.grpc.inference"
    service = pb.services["org.pytorch.serve.grpc.inference.InferenceAPIsService"]
    assert [(name, client, server) for name, _, _, client, server in service] == [
        ("Ping", False, False),
        ("Predictions", False, False),
        ("StreamPredictions", False, True),
        ("StreamPredictions2", True, True),
    ]
    assert fields(pb.PredictionsRequest) == {"model_name": 1, "model_version": 2, "input": 3, "sequenceId": 4}
    assert fields(pb.PredictionResponse) == {"prediction": 1, "sequenceId": 2, "status": 3}
    assert fields(pb.TorchServeHealthResponse) == {"health": 1}


def test_torchserve_management_numbers() -> None:
    pb = grpc_stubs.load("ts_management")
    service = pb.services["org.pytorch.serve.grpc.management.ManagementAPIsService"]
    assert [name for name, *_ in service] == [
        "DescribeModel", "ListModels", "RegisterModel", "ScaleWorker", "SetDefault", "UnregisterModel",
    ]  # fmt: skip
    assert fields(pb.RegisterModelRequest) == {
        "batch_size": 1, "handler": 2, "initial_workers": 3, "max_batch_delay": 4, "model_name": 5,
        "response_timeout": 6, "runtime": 7, "synchronous": 8, "url": 9, "s3_sse_kms": 10, "queue_timeout": 11,
    }  # fmt: skip
    assert fields(pb.ScaleWorkerRequest) == {
        "model_name": 1, "model_version": 2, "max_worker": 3, "min_worker": 4, "number_gpu": 5, "synchronous": 6,
        "timeout": 7,
    }  # fmt: skip
    assert fields(pb.DescribeModelRequest) == {"model_name": 1, "model_version": 2, "customized": 3}
    assert fields(pb.ListModelsRequest) == {"limit": 1, "next_page_token": 2}
    assert fields(pb.SetDefaultRequest) == fields(pb.UnregisterModelRequest) == {"model_name": 1, "model_version": 2}
    assert fields(pb.ManagementResponse) == {"msg": 1}
