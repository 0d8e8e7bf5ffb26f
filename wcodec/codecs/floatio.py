"""Helpers for the lossy array->array codecs: they compute in float32 whatever
float dtype the tensor has (bfloat16 included) and give back that dtype."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import ConfigError, FormatError
from .base import ArraySpec
from .cast import convert


def check_float(spec: ArraySpec, who: str) -> None:
    if not dtypes.get(spec.dtype).is_float:
        raise ConfigError(f"{who} works on float tensors, not {spec.dtype}")


def check_axis(axis: int, spec: ArraySpec, who: str) -> None:
    """ConfigError unless ``axis`` names a dimension (any axis fits a 0-d tensor)."""
    ndim = len(spec.shape)
    if ndim and not -ndim <= axis < ndim:
        raise ConfigError(f"{who}: axis {axis} is out of range for a {ndim}-D tensor")


def to_float32(value: np.ndarray, spec: ArraySpec) -> np.ndarray:
    return np.ascontiguousarray(convert(np.asarray(value), spec.dtype, "float32"))


def from_float32(value: np.ndarray, spec: ArraySpec) -> np.ndarray:
    return np.ascontiguousarray(convert(value, "float32", spec.dtype)).reshape(spec.shape)


def read_float32(side, name: str, count: int, who: str) -> np.ndarray:
    """A float32 side stream that must hold exactly ``count`` values."""
    return read_array(side, name, count, np.dtype("<f4"), who)


def read_array(side, name: str, count: int, dtype: np.dtype, who: str) -> np.ndarray:
    buf = side[name]
    if len(buf) != count * dtype.itemsize:
        raise FormatError(f"{who}: side stream {name!r} holds {len(buf)} bytes, "
                          f"expected {count * dtype.itemsize}")
    return np.frombuffer(buf, dtype=dtype)
