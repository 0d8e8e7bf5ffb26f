"""``cast``: convert a floating-point array to another float dtype (lossy when
narrowing). Decoding converts back to the dtype the pipeline was given.

float32 -> bfloat16 rounds to nearest, ties to even, on the bit pattern (NaN stays
NaN); float16 uses numpy's IEEE conversion (values past 65504 become inf).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import ConfigError
from .base import ARRAY_TO_ARRAY, ArraySpec, Codec, Param, register

FLOAT_TYPES = ("float16", "bfloat16", "float32", "float64")


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16, returned as uint16 bit patterns."""
    x = np.asarray(x, dtype=np.float32)
    shape = x.shape
    x = np.ascontiguousarray(x).reshape(-1)  # 1-D so that 0-d inputs index like arrays
    u = x.view(np.uint32)
    rounded = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    out = (rounded >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return out.reshape(shape)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    out = np.asarray(bits).astype(np.uint32)
    out <<= np.uint32(16)
    return out.view(np.float32)


def convert(array: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert an array carried as ``src`` into the carrier of ``dst``."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _convert(array, src, dst)


def _convert(array: np.ndarray, src: str, dst: str) -> np.ndarray:
    if src == dst:
        return array
    if src == "bfloat16":
        array = bfloat16_bits_to_float32(array)
    if dst == "bfloat16":
        return float32_to_bfloat16_bits(array.astype(np.float32, copy=False))
    return array.astype(dtypes.get(dst).numpy)


@register
class Cast(Codec):
    codec_id = "cast"
    kind = ARRAY_TO_ARRAY
    lossy = True
    params = {"dtype": Param((str,), None, lambda v: v in FLOAT_TYPES,
                             "one of " + ", ".join(FLOAT_TYPES), required=True)}

    def resolve(self, spec):
        if not dtypes.get(spec.dtype).is_float:
            raise ConfigError(f"cast: cannot cast a {spec.dtype} tensor to {self.dtype}")
        return ArraySpec(spec.shape, self.dtype)

    def encode(self, value, spec, side):
        return convert(value, spec.dtype, self.dtype)

    def decode(self, value, spec, side):
        return convert(value, self.dtype, spec.dtype)
