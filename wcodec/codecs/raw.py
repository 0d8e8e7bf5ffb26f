"""``raw``: the array's little-endian bytes in C order, nothing else."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import FormatError
from .base import ARRAY_TO_BYTES, ArraySpec, Codec, as_bytes, register


def bytes_to_array(data, spec: ArraySpec, who: str) -> np.ndarray:
    """View ``data`` as an array of ``spec``; FormatError if the length is wrong.

    Booleans are normalised (any nonzero byte is True) so hostile bytes cannot
    produce out-of-range bool values."""
    buf = as_bytes(data)
    if len(buf) != spec.nbytes:
        raise FormatError(f"{who}: stream holds {len(buf)} bytes, expected {spec.nbytes}")
    dt = dtypes.get(spec.dtype)
    if spec.dtype == "bool":
        return (np.frombuffer(buf, dtype=np.uint8) != 0).reshape(spec.shape)
    return np.frombuffer(buf, dtype=dt.numpy).reshape(spec.shape)


@register
class Raw(Codec):
    codec_id = "raw"
    kind = ARRAY_TO_BYTES

    def encode(self, value, spec, side):
        return as_bytes(dtypes.to_storage(value, spec.dtype))

    def decode(self, value, spec, side):
        return bytes_to_array(value, spec, "raw")
