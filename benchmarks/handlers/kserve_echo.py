"""The echo model as a KServe ``Model``: the KServe analogue of the echo handler, for the ``kserve-*`` scenarios.

- V1 (``/v1/models/echo:predict``): ``{"instances": X}`` is answered ``{"predictions": X}``.
- V2 (``/v2/models/echo/infer``): one output, ``output-0``, holding the first input's data unchanged (same datatype
  and shape); binary when the request asks for binary output (``parameters.binary_data_output``, or the
  ``binary_data`` parameter of a requested ``output-0``), JSON otherwise.

It imports only from ``kserve``, so the same file runs

- under KServe itself: ``python kserve_echo.py --http_port 8080 --model_name echo`` (KServe's ``ModelServer`` and
  flags, in a venv with ``kserve`` installed);
- in this project's worker processes, as a model-store model (``model-config.yaml``: ``workerRuntime: kserve``),
  where ``kserve`` is the real package when it is installed, else our shim;
- with this project's ``ModelServer``: ``kserve_echo_ours.py`` imports :class:`EchoModel` and :func:`parse_args`
  from here.

No needless copies: JSON data goes back as the very list that came in; binary data goes through ``as_numpy()``
(with our server a view of the received bytes) and ``set_data_from_numpy``, whose ``tobytes()`` is KServe's public
way to set binary output.
"""

from __future__ import annotations

import argparse
from typing import Any

from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.utils.utils import generate_uuid

OUTPUT = "output-0"


def wants_binary(request: InferRequest) -> bool:
    """KServe's rule: a requested ``output-0`` decides by its own ``binary_data``; with no outputs listed,
    ``parameters.binary_data_output`` decides."""
    if request.request_outputs:
        return any(out.name == OUTPUT and bool(out.binary_data) for out in request.request_outputs)
    return bool(request.use_binary_outputs)


def echo_response(request: InferRequest, model_name: str) -> InferResponse:
    """``output-0``: the first input's data, datatype and shape."""
    tensor = request.inputs[0]
    binary = wants_binary(request)
    if not binary and isinstance(tensor.data, list):
        output = InferOutput(OUTPUT, list(tensor.shape), tensor.datatype, data=tensor.data)
    else:
        output = InferOutput(OUTPUT, list(tensor.shape), tensor.datatype)
        output.set_data_from_numpy(tensor.as_numpy(), binary_data=binary)
    return InferResponse(
        response_id=request.id or generate_uuid(),  # as get_predict_response does
        model_name=model_name,
        infer_outputs=[output],
        use_binary_outputs=binary,
        requested_outputs=request.request_outputs,
    )


class EchoModel(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):
            return echo_response(payload, self.name)
        return {"predictions": payload["instances"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """KServe's own flags (``--http_port``, ``--model_name``, ``--workers``...)."""
    from kserve import model_server

    parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__.split("\n")[0])
    args, _ = parser.parse_known_args(argv)
    return args


def main() -> None:
    from kserve import ModelServer  # here, not at the top: a worker importing this file needs no server

    args = parse_args()
    ModelServer().start([EchoModel(args.model_name)])


if __name__ == "__main__":
    main()
