"""``auto``: an encoder-only choice among array->bytes coders. The pipeline
encodes the symbols with every candidate and keeps the smallest result; the
file records the coder that won, never ``auto`` itself."""
from __future__ import annotations

from ..errors import FormatError
from .base import ARRAY_TO_BYTES, Codec, Param, codec_class, get_codec, register

DEFAULT_CANDIDATES = ["huffman", "zerorun", "sparse", "bitpack", "linerice"]


def _valid(candidates) -> bool:
    """Exact array->bytes coders only (a lossy default such as bloomier's is refused)."""
    try:
        return bool(candidates) and all(
            isinstance(c, str) and c != "auto" and codec_class(c).kind == ARRAY_TO_BYTES
            and not get_codec({"id": c}).lossy for c in candidates)
    except Exception:
        return False


@register
class Auto(Codec):
    codec_id = "auto"
    kind = ARRAY_TO_BYTES
    encoder_only = True
    params = {"candidates": Param((list,), DEFAULT_CANDIDATES, _valid,
                                  "a list of array->bytes codec ids")}

    def coders(self) -> list[Codec]:
        return [get_codec({"id": c}) for c in self.candidates]

    def resolve(self, spec):
        for coder in self.coders():
            coder.resolve(spec)
        return spec

    def decode(self, value, spec, side):
        raise FormatError("'auto' is an encoder-only choice and cannot appear in a file")
