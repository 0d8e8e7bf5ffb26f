"""``bytegroup``: lossless coding of numbers by byte planes (the ZipNN idea).

Floats are first rotated left by one bit inside their word so the sign moves to
the lowest bit and the exponent fills the top byte. The words are then split
into byte planes (plane i = byte i of every little-endian word) and each plane
is zstd-compressed on its own, or stored raw when that is not smaller. The
exponent plane of trained weights holds ~2.6 bits of information per byte, so it
shrinks ~3x; mantissa planes are near-random and are mostly stored raw.
"""
from __future__ import annotations

import struct

import numpy as np

from .. import dtypes
from ..errors import FormatError
from . import zstd as zstd_codec
from .base import ARRAY_TO_BYTES, Codec, Param, as_bytes, register

METHOD_RAW = 0
METHOD_ZSTD = 1
TRANSFORM_NONE = 0
TRANSFORM_ROTATE = 1
PROBE_GAIN = 0.99  # planes level-1 zstd cannot shrink by 1% are stored raw
_PLANE = struct.Struct("<BQ")
_UINT = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


def _transform_for(dtype_name: str) -> int:
    dt = dtypes.get(dtype_name)
    return TRANSFORM_ROTATE if dt.is_float and dt.itemsize > 1 else TRANSFORM_NONE


@register
class ByteGroup(Codec):
    codec_id = "bytegroup"
    kind = ARRAY_TO_BYTES
    params = {"level": Param((int,), 19, lambda v: 1 <= v <= 22, "zstd level 1..22")}

    def encode(self, value, spec, side):
        dt = dtypes.get(spec.dtype)
        k = dt.itemsize
        words = dtypes.to_storage(value, spec.dtype).reshape(-1).view(_UINT[k])
        transform = _transform_for(spec.dtype)
        if transform == TRANSFORM_ROTATE:
            one, bits = _UINT[k].type(1), _UINT[k].type(8 * k - 1)
            words = (words << one) | (words >> bits)
        planes = words.view(np.uint8).reshape(-1, k)
        header = [struct.pack("<BB", k, transform)]
        payloads = []
        for i in range(k):
            plane = np.ascontiguousarray(planes[:, i])
            packed = b""
            # A fast probe skips the slow high-level pass on near-random planes.
            if plane.size and len(zstd_codec.compress(plane, 1)) < PROBE_GAIN * plane.size:
                packed = zstd_codec.compress(plane, self.level)
            if packed and len(packed) < plane.size:
                method, payload = METHOD_ZSTD, packed
            else:
                method, payload = METHOD_RAW, plane.tobytes()
            header.append(_PLANE.pack(method, len(payload)))
            payloads.append(payload)
        return b"".join(header + payloads)

    def decode(self, value, spec, side):
        buf = as_bytes(value)
        dt = dtypes.get(spec.dtype)
        k, n = dt.itemsize, spec.size
        head = 2 + k * _PLANE.size
        if len(buf) < head:
            raise FormatError("bytegroup: stream shorter than its header")
        nplanes, transform = buf[0], buf[1]
        if nplanes != k or transform != _transform_for(spec.dtype):
            raise FormatError(f"bytegroup: header says {nplanes} planes/transform {transform}, "
                              f"which does not fit a {spec.dtype} tensor")
        words = np.empty((n, k), dtype=np.uint8)
        pos = head
        for i in range(k):
            method, length = _PLANE.unpack_from(buf, 2 + i * _PLANE.size)
            if length > len(buf) - pos:
                raise FormatError(f"bytegroup: plane {i} runs past the end of the stream")
            payload = buf[pos:pos + length]
            pos += length
            if method == METHOD_RAW:
                if length != n:
                    raise FormatError(f"bytegroup: raw plane {i} holds {length} bytes, expected {n}")
                plane = np.frombuffer(payload, dtype=np.uint8)
            elif method == METHOD_ZSTD:
                plane = np.frombuffer(zstd_codec.decompress(payload, n, "bytegroup", exact_size=n),
                                      dtype=np.uint8)
            else:
                raise FormatError(f"bytegroup: unknown plane method {method}")
            words[:, i] = plane
        if pos != len(buf):
            raise FormatError("bytegroup: trailing bytes after the last plane")
        out = words.view(_UINT[k]).reshape(-1)
        if transform == TRANSFORM_ROTATE:
            low = out >> _UINT[k].type(1)
            out <<= _UINT[k].type(8 * k - 1)
            out |= low
        if spec.dtype == "bool":
            return (out != 0).reshape(spec.shape)
        return out.view(dt.numpy).reshape(spec.shape)
