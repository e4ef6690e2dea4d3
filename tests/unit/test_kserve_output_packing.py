"""A KServe model's JSON-style output (``set_data_from_numpy(array, binary_data=False)``) becomes a tensor by
numpy when its list is still the one made of the array, element by element otherwise, with the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from workers.kserve_api import InferOutput, InferResponse
from workers.runtimes.kserve_codec import output_tensors
from workers.tensors import Tensor, TensorError


def response(output: InferOutput) -> InferResponse:
    return InferResponse("id", "m", [output])


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [(np.float32, "FP32"), (np.float64, "FP64"), (np.int8, "INT8"), (np.uint64, "UINT64"), (np.bool_, "BOOL")],
)
def test_an_untouched_list_packs_to_the_arrays_bytes(dtype, datatype) -> None:
    array = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    output = InferOutput("o", [3, 4], datatype)
    output.set_data_from_numpy(array, binary_data=False)
    [tensor] = output_tensors(response(output))
    assert tensor == Tensor.from_list("o", datatype, [3, 4], array.ravel().tolist())
    assert bytes(tensor.data) == array.astype(array.dtype.newbyteorder("<")).tobytes()


def test_the_list_changed_in_place_or_replaced_is_what_counts() -> None:
    output = InferOutput("o", [2], "FP32")
    output.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32), binary_data=False)
    output.data[1] = 5.5
    assert output_tensors(response(output))[0].to_list() == [1.0, 5.5]
    output.data = [True, 1.0]  # another list: checked element by element, as any list a model builds
    with pytest.raises(TensorError, match="element 0"):
        output_tensors(response(output))
