"""A KServe model with typed outputs: ``fp16_output`` (FP16) and ``fp32_output`` (FP32) of its input ``fp32_input``
plus one, and ``str_output`` (BYTES) of its optional input ``str_input`` in upper case."""

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model


class FP16Model(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        values = payload.get_input_by_name("fp32_input").as_numpy().astype(np.float32) + 1
        outputs = []
        for name, dtype, datatype in (("fp16_output", np.float16, "FP16"), ("fp32_output", np.float32, "FP32")):
            output = InferOutput(name=name, shape=list(values.shape), datatype=datatype)
            output.set_data_from_numpy(values.astype(dtype), binary_data=datatype == "FP16")
            outputs.append(output)
        text = payload.get_input_by_name("str_input")
        if text is not None:
            upper = np.array(
                [str(v.decode() if isinstance(v, bytes) else v).upper() for v in text.as_numpy().ravel()], dtype=object
            )
            output = InferOutput(name="str_output", shape=list(upper.shape), datatype="BYTES")
            output.set_data_from_numpy(upper, binary_data=False)
            outputs.append(output)
        return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=outputs)
