"""``zstd``: Zstandard compression of a byte stream (one frame, content size
recorded in the frame header)."""
from __future__ import annotations

import zstandard

from ..errors import FormatError, LimitExceeded
from .base import BYTES_TO_BYTES, Codec, Param, as_bytes, max_coded_size, register


def _dictionary(raw: bytes | None):
    return None if raw is None else zstandard.ZstdCompressionDict(
        raw, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def compress(data, level: int, dictionary: bytes | None = None) -> bytes:
    """One frame with its content size; ``dictionary``: raw-content dictionary
    bytes (no dictionary id is written: the reader must know which)."""
    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_dict_id=False,
                                    dict_data=_dictionary(dictionary)).compress(as_bytes(data))


def decompress(data, max_size: int, who: str = "zstd", exact_size: int | None = None,
               dictionary: bytes | None = None) -> bytes:
    """Decompress one frame; refuse frames without a content size, larger than
    ``max_size`` (or not equal to ``exact_size``) before inflating.
    ``dictionary``: the raw-content dictionary the frame was compressed with."""
    buf = as_bytes(data)
    try:
        params = zstandard.get_frame_parameters(buf)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{who}: bad zstd frame header: {exc}") from None
    size = params.content_size
    if size == zstandard.CONTENTSIZE_UNKNOWN or size == zstandard.CONTENTSIZE_ERROR:
        raise FormatError(f"{who}: zstd frame does not record its content size")
    if exact_size is not None and size != exact_size:
        raise FormatError(f"{who}: zstd frame holds {size} bytes, expected {exact_size}")
    if size > max_size:
        raise LimitExceeded(f"{who}: zstd frame inflates to {size} bytes, above the limit {max_size}")
    try:
        dobj = zstandard.ZstdDecompressor(dict_data=_dictionary(dictionary)).decompressobj()
        out = dobj.decompress(buf)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{who}: corrupt zstd data: {exc}") from None
    if not dobj.eof:
        raise FormatError(f"{who}: zstd frame is truncated")
    if dobj.unused_data:
        raise FormatError(f"{who}: trailing bytes after the zstd frame")
    if len(out) != size:
        raise FormatError(f"{who}: zstd frame decoded to {len(out)} bytes, header said {size}")
    return out


@register
class Zstd(Codec):
    codec_id = "zstd"
    kind = BYTES_TO_BYTES
    params = {"level": Param((int,), 3, lambda v: -131072 <= v <= 22, "zstd level, at most 22")}

    def encode(self, value, spec, side):
        return compress(value, self.level)

    def decode(self, value, spec, side):
        return decompress(value, max_coded_size(spec))
