"""``zerorun``: zero-run coding for pruned tensors. Every run of zeros becomes a
few RUNA/RUNB digits (bijective base 2, as in bzip2), nonzero symbol v becomes
v + 1, and that run alphabet is Huffman-coded, so long runs cost a few bits in
total where plain Huffman pays at least one bit per zero.

Stream: u64 number of run symbols, then the ``intcoding`` symbol stream.
Bytes: ``spec/codecs/zerorun.md``."""
from __future__ import annotations

import struct

from ..errors import FormatError
from ..kernels import zerorun
from . import intcoding
from .base import as_bytes, register

_U64 = struct.Struct("<Q")


@register
class ZeroRun(intcoding.IntegerCoder):
    codec_id = "zerorun"

    def encode(self, value, spec, side):
        symbols = intcoding.to_symbols(value, spec)
        runs = zerorun.to_runs(symbols)
        intcoding.symbol_stats(symbols, side.stats, coded=runs)
        return _U64.pack(runs.size) + intcoding.encode_symbols(runs)

    def decode(self, value, spec, side):
        buf = as_bytes(value)
        if len(buf) < _U64.size:
            raise FormatError("zerorun: stream shorter than its header")
        (n_runs,) = _U64.unpack_from(buf, 0)
        if n_runs > spec.size:
            raise FormatError(f"zerorun: {n_runs} run symbols for {spec.size} values")
        runs = intcoding.decode_symbols(buf[_U64.size:], n_runs)
        return intcoding.from_symbols(zerorun.from_runs(runs, spec.size), spec)
