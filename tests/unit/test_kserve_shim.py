"""The ``kserve`` shim of worker processes (workers.kserve_compat): KServe's import paths without KServe, and the real
package left in charge when it is installed. Each case runs in a fresh interpreter."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from workers.kserve_compat import SHIM_DIR

REPO = Path(__file__).resolve().parents[2]


def python(script: str, path: list[str], isolated: bool) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``path`` appended to ``sys.path``; ``isolated`` starts without site-packages (-I -S)."""
    flags = ["-I", "-S"] if isolated else ["-I"]
    prologue = f"import sys\nsys.path[:0] = {path!r}\n" if not isolated else f"import sys\nsys.path += {path!r}\n"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return subprocess.run(
        [sys.executable, *flags, "-c", prologue + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )


def site_without_kserve(tmp_path: Path) -> str:
    """A directory holding links to everything installed except kserve: the packages the shim needs (numpy,
    aiohttp...) without the real KServe."""
    view = tmp_path / "site"
    view.mkdir()
    for directory in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(directory).iterdir():
            if entry.name == "kserve" or entry.name.startswith("kserve-") or (view / entry.name).exists():
                continue
            (view / entry.name).symlink_to(entry)
    return str(view)


SHIM_SCRIPT = """
import asyncio, importlib, types
from workers.kserve_compat import SHIM_DIR, install_kserve_shim
assert importlib.util.find_spec("kserve") is None
assert install_kserve_shim() is True and install_kserve_shim() is True
assert sys.path.count(str(SHIM_DIR)) == 1 and sys.path[-1] == str(SHIM_DIR)

import numpy as np
import kserve
from kserve import Model, InferRequest, InferResponse, InferInput as TopInput, ModelRepository, PredictorConfig
from kserve.protocol.infer_type import InferInput, InferOutput, RequestedOutput, serialize_byte_tensor
from kserve.model import BaseKServeModel, InferenceVerb, PredictorProtocol
from kserve.errors import InvalidInput, ModelNotFound
from kserve.utils.utils import get_predict_response, strtobool
from kserve.utils.numpy_codec import from_np_dtype, to_np_dtype
from kserve.model_repository import ModelRepository as Repository
from kserve.model_server import parser
from kserve.logging import logger, trace_logger
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.context import set_predictor_config, get_predictor_config
from kserve.predictor_config import PredictorConfig as Config
import workers.kserve_api as api

assert kserve.__file__.startswith(str(SHIM_DIR))
assert Model is api.Model and InferInput is TopInput is api.InferInput and Repository is ModelRepository
assert Config is PredictorConfig and kserve.constants.PredictorProtocol is PredictorProtocol
assert kserve.utils.strtobool("on") is True and (logger.name, trace_logger.name) == ("kserve", "kserve.trace")
assert parser.parse_args([]).http_port == 8080 and INFERENCE_CONTENT_LENGTH_HEADER == "inference-header-content-length"

class Doubler(Model):
    def __init__(self, name):
        super().__init__(name)
        self.load()

    def predict(self, payload, headers=None):
        return get_predict_response(payload, payload.inputs[0].as_numpy() * 2, self.name)

request = InferRequest("d", [InferInput("x", [2], "INT32", data=[1, 2])], request_id="r")
response, _ = asyncio.run(Doubler("d")(request))
assert response.to_rest()[0]["outputs"][0]["data"] == [2, 4], response.to_rest()
assert not [name for name in sys.modules if name.split(".")[0] == "modelserver"], "the frontend was imported"

server_module = types.ModuleType("modelserver.kserve.model_server")
server_module.ModelServer = type("ModelServer", (), {})
sys.modules["modelserver.kserve.model_server"] = server_module
from kserve import ModelServer
assert ModelServer is server_module.ModelServer is kserve.model_server.ModelServer
assert kserve.model_server.args.http_port == 8080
print("shim ok")
"""


def test_the_shim_provides_kserves_import_paths_when_kserve_is_missing(tmp_path: Path) -> None:
    done = python(SHIM_SCRIPT, [str(REPO), site_without_kserve(tmp_path)], isolated=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shim ok"


GRPC_SCRIPT = """
import tempfile
from concurrent.futures import ThreadPoolExecutor
import grpc
import numpy as np
from workers.kserve_compat import SHIM_DIR, install_kserve_shim
assert install_kserve_shim() is True
from kserve import InferInput, InferOutput, InferRequest, InferResponse
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb, grpc_predict_v2_pb2_grpc as pb_grpc
assert pb.__file__.startswith(str(SHIM_DIR))

request = InferRequest("m", [InferInput("x", [2], "FP16", data=np.array([1.5, -2], dtype=np.float16))], "r1")
message = request.to_grpc()
assert type(message) is pb.ModelInferRequest and message == pb.ModelInferRequest.FromString(message.SerializeToString())

class Doubler(pb_grpc.GRPCInferenceServiceServicer):
    def ModelInfer(self, message, context):
        request = InferRequest.from_grpc(message)
        data = request.inputs[0].as_numpy() * 2
        return InferResponse(request.id, request.model_name, [InferOutput("y", [2], "FP16", data=data)]).to_grpc()

server = grpc.server(ThreadPoolExecutor(2))
pb_grpc.add_GRPCInferenceServiceServicer_to_server(Doubler(), server)
address = "unix:" + tempfile.mkdtemp() + "/grpc.sock"
server.add_insecure_port(address)
server.start()
try:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response = InferResponse.from_grpc(stub.ModelInfer(message, timeout=30))
        assert response.id == "r1" and response.outputs[0].as_numpy().tolist() == [3.0, -4.0]
        try:
            stub.ServerLive(pb.ServerLiveRequest(), timeout=30)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNIMPLEMENTED, err
        else:
            raise AssertionError("ServerLive should be unimplemented")
finally:
    server.stop(None)
print("grpc ok")
"""


def test_the_shims_grpc_modules_serve_and_call_kserves_service(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    done = python(GRPC_SCRIPT, [str(REPO), site_without_kserve(tmp_path)], isolated=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "grpc ok"


NO_GRPC_SCRIPT = """
for name in ("grpc", "grpc_tools", "google.protobuf"):
    sys.modules[name] = None  # as if the grpc extra were not installed
from workers.kserve_compat import install_kserve_shim
assert install_kserve_shim() is True
from kserve import InferInput, InferRequest
request = InferRequest("m", [InferInput("x", [1], "INT32", data=[1])])
assert request.to_rest()[0]["inputs"][0]["data"] == [1]
for attempt in (request.to_grpc, lambda: __import__("kserve.protocol.grpc.grpc_predict_v2_pb2"),
                lambda: __import__("kserve.protocol.grpc.grpc_predict_v2_pb2_grpc")):
    try:
        attempt()
    except ImportError as err:
        assert "pip install 'modelserver[grpc]'" in str(err), err
    else:
        raise AssertionError("expected an ImportError")
print("no grpc ok")
"""


def test_without_the_grpc_extra_the_api_works_and_grpc_names_the_extra(tmp_path: Path) -> None:
    done = python(NO_GRPC_SCRIPT, [str(REPO), site_without_kserve(tmp_path)], isolated=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no grpc ok"


REAL_SCRIPT = """
from workers.kserve_compat import SHIM_DIR, install_kserve_shim
assert install_kserve_shim() is False
assert str(SHIM_DIR) not in sys.path
import kserve
assert not kserve.__file__.startswith(str(SHIM_DIR)), kserve.__file__
assert kserve.Model.__module__ == "kserve.model"
print("real ok")
"""


def test_a_real_kserve_stays_in_charge() -> None:
    spec = importlib.util.find_spec("kserve")
    if spec is None or str(SHIM_DIR) in str(spec.origin):
        pytest.skip("the real kserve package is not installed")
    done = python(REAL_SCRIPT, [str(REPO)], isolated=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "real ok"


def test_workers_code_never_imports_the_frontend() -> None:
    """Only the shim's kserve.model_server names modelserver, lazily (importlib, on first use of ModelServer)."""
    roots = [REPO / "workers" / "kserve_api", SHIM_DIR, REPO / "workers" / "kserve_compat.py"]
    files = [path for root in roots for path in ([root] if root.is_file() else root.rglob("*.py"))]
    assert len(files) > 20
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(name.split(".")[0] == "modelserver" for name in names), path


def test_importing_the_api_is_light() -> None:
    script = """
import workers.kserve_api, workers.kserve_api.server_args, workers.kserve_api.utils, workers.kserve_compat
heavy = {"modelserver", "pandas", "torch", "kserve", "grpc", "google"} & {name.split(".")[0] for name in sys.modules}
assert not heavy, heavy
print("light")
"""
    done = python(script, [str(REPO)], isolated=False)
    assert done.returncode == 0, done.stderr


SCRIPT_PATHS = """
import modelserver.kserve as kserve
from modelserver.kserve import Model, InferRequest, ModelRepository, model_server
from modelserver.kserve.model import BaseKServeModel, PredictorProtocol, append_forwardable_headers
from modelserver.kserve.model import _FORWARDABLE_HEADERS  # private names KServe's own tests import
from modelserver.kserve.protocol.infer_type import _contains_fp16_datatype
from modelserver.kserve.errors import InvalidInput, NoModelReady
from modelserver.kserve.protocol.infer_type import InferInput, InferOutput, RequestedOutput, serialize_byte_tensor
from modelserver.kserve.utils.utils import get_predict_input, get_predict_response, generate_uuid
from modelserver.kserve.utils.numpy_codec import to_np_dtype
from modelserver.kserve.model_repository import ModelRepository as Repository
from modelserver.kserve.model_server import ModelServer, parser
from modelserver.kserve.logging import logger
from modelserver.kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from modelserver.kserve.context import set_predictor_config
from modelserver.kserve.predictor_config import PredictorConfig
from modelserver.kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferRequest
import workers.kserve_api as api
assert Model is api.Model and InferInput is api.InferInput and Repository is ModelRepository is api.ModelRepository
assert InvalidInput is api.InvalidInput and PredictorConfig is api.PredictorConfig
assert get_predict_response is api.utils.get_predict_response and kserve.utils.get_predict_input is get_predict_input
assert kserve.constants.INFERENCE_CONTENT_LENGTH_HEADER == INFERENCE_CONTENT_LENGTH_HEADER
assert ModelServer is kserve.ModelServer and model_server.parser is parser
assert _FORWARDABLE_HEADERS == {"x-request-id", "x-b3-traceid", "authorization"}
half = api.InferResponse("1", "m", [api.InferOutput("o", [1], "FP16", data=[1.0])])
assert _contains_fp16_datatype(half) and not _contains_fp16_datatype(api.InferResponse("1", "m", []))
assert type(api.InferRequest("m", [api.InferInput("x", [1], "BOOL", data=[True])]).to_grpc()) is ModelInferRequest
print("paths ok")
"""


def test_a_script_imports_kserves_module_paths_under_modelserver_kserve() -> None:
    """A KServe script with ``kserve`` replaced by ``modelserver.kserve`` in every import, submodules included."""
    done = python(SCRIPT_PATHS, [str(REPO)], isolated=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "paths ok"
