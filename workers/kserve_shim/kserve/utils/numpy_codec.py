"""``kserve.utils.numpy_codec``: datatype <-> numpy dtype."""

from workers.kserve_api.codec import from_np_dtype, to_np_dtype

__all__ = ["from_np_dtype", "to_np_dtype"]
