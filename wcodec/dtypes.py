"""The element types a wcodec file can hold, in one table that drives all size
arithmetic.

Every dtype is stored little-endian. ``bfloat16`` has no numpy equivalent: in
numpy it is carried as its raw 16-bit pattern in a ``uint16`` array (the torch
layer turns it back into ``torch.bfloat16`` without rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, InputError


@dataclass(frozen=True)
class DType:
    name: str          # the name written in files
    storage: str       # numpy dtype string of the little-endian carrier
    itemsize: int
    is_float: bool

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.storage)


DTYPES: dict[str, DType] = {
    d.name: d
    for d in [
        DType("float64", "<f8", 8, True),
        DType("float32", "<f4", 4, True),
        DType("float16", "<f2", 2, True),
        DType("bfloat16", "<u2", 2, True),
        DType("int64", "<i8", 8, False),
        DType("int32", "<i4", 4, False),
        DType("int16", "<i2", 2, False),
        DType("int8", "|i1", 1, False),
        DType("uint64", "<u8", 8, False),
        DType("uint32", "<u4", 4, False),
        DType("uint16", "<u2", 2, False),
        DType("uint8", "|u1", 1, False),
        DType("bool", "|b1", 1, False),
    ]
}

_NUMPY_TO_NAME = {
    "f8": "float64", "f4": "float32", "f2": "float16",
    "i8": "int64", "i4": "int32", "i2": "int16", "i1": "int8",
    "u8": "uint64", "u4": "uint32", "u2": "uint16", "u1": "uint8", "b1": "bool",
}


def get(name: str) -> DType:
    """The dtype called ``name``; ConfigError if wcodec does not know it."""
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unsupported dtype {name!r}; known: {', '.join(DTYPES)}") from None


def name_of(array: np.ndarray) -> str:
    """The wcodec dtype name of a numpy array (``bfloat16`` from ml_dtypes too)."""
    dt = array.dtype
    if dt.name == "bfloat16":
        return "bfloat16"
    key = f"{dt.kind}{dt.itemsize}"
    if key not in _NUMPY_TO_NAME:
        raise InputError(f"unsupported numpy dtype {dt} (wcodec stores {', '.join(DTYPES)})")
    return _NUMPY_TO_NAME[key]


def to_storage(array: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous little-endian array in the carrier dtype of ``name``.

    The array must already hold that dtype (byte order aside; bfloat16 may come
    as its uint16 carrier): values are never converted silently. Bools are
    normalised to 0/1 bytes whatever bytes they were built from."""
    dt = get(name)
    array = np.asarray(array)
    if name == "bfloat16" and array.dtype.name == "bfloat16":
        array = array.view(np.uint16)
    elif name_of(array) != ("uint16" if name == "bfloat16" else name):
        raise InputError(f"array of dtype {array.dtype} given as {name}")
    if name == "bool":
        return np.ascontiguousarray(array).view(np.uint8) != 0
    return np.ascontiguousarray(array, dtype=dt.numpy).reshape(array.shape)
