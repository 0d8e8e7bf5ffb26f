"""A tensor's codec pipeline: array->array transforms, one array->bytes coder,
then bytes->bytes stages (the Zarr v3 codec chain)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .codecs.base import (ARRAY_TO_ARRAY, ARRAY_TO_BYTES, BYTES_TO_BYTES, ArraySpec,
                          Codec, SideStreams, as_bytes, get_codec)
from .errors import ConfigError, FormatError, InputError, WcodecError

MAX_STAGES = 16
DATA_STREAM = "data"


@dataclass
class Encoded:
    """What ``Pipeline.encode`` produces for one tensor."""

    data: bytes
    streams: dict[str, bytes]
    stats: dict[str, float]
    pipeline: "Pipeline"


class Pipeline:
    """An ordered, validated list of codecs for one tensor."""

    def __init__(self, codecs: Iterable[Codec | dict[str, Any]]):
        self.codecs = [get_codec(c) for c in codecs]
        kinds = [c.kind for c in self.codecs]
        if len(kinds) > MAX_STAGES:
            raise ConfigError(f"a pipeline has at most {MAX_STAGES} codecs, got {len(kinds)}")
        if kinds.count(ARRAY_TO_BYTES) != 1:
            raise ConfigError(
                f"a pipeline needs exactly one array->bytes codec, got {self.describe() or 'none'}")
        split = kinds.index(ARRAY_TO_BYTES)
        if any(k != ARRAY_TO_ARRAY for k in kinds[:split]) or any(
                k != BYTES_TO_BYTES for k in kinds[split + 1:]):
            raise ConfigError(f"pipeline {self.describe()}: order must be array->array codecs, "
                              "one array->bytes codec, then bytes->bytes codecs")
        self.transforms = self.codecs[:split]
        self.coder = self.codecs[split]
        self.byte_stages = self.codecs[split + 1:]

    @classmethod
    def from_config(cls, config: Any) -> "Pipeline":
        if not isinstance(config, list):
            raise ConfigError(f"a pipeline config is a list of codec configs, got {type(config).__name__}")
        return cls(config)

    def get_config(self) -> list[dict[str, Any]]:
        return [c.get_config() for c in self.codecs]

    def describe(self) -> str:
        return "+".join(c.codec_id for c in self.codecs)

    @property
    def lossy(self) -> bool:
        return any(c.lossy for c in self.codecs)

    def specs(self, spec: ArraySpec) -> list[ArraySpec]:
        """The input spec of every array stage, then the spec the coder sees."""
        out = [spec]
        for codec in self.transforms:
            spec = codec.resolve(spec)
            out.append(spec)
        self.coder.resolve(spec)  # lets the coder refuse dtypes it cannot code
        return out

    def encode(self, array: np.ndarray, spec: ArraySpec) -> "Encoded":
        """Run the pipeline. An encoder-only coder (``auto``) is replaced by the
        candidate giving the smallest data stream; ``Encoded.pipeline`` is the
        pipeline actually applied, which is what the file must record."""
        specs = self.specs(spec)
        streams: dict[str, bytes] = {}
        stats: dict[str, float] = {}
        value: Any = array
        for i, codec in enumerate(self.transforms):
            side = SideStreams()
            value = codec.encode(value, specs[i], side)
            stats.update(side.stats)
            for name, blob in side.items():
                streams[f"{i}.{name}"] = bytes(as_bytes(blob))
        coders = self.coder.coders() if self.coder.encoder_only else [self.coder]
        best, failure = None, None
        for coder in coders:
            if best is not None and not self.byte_stages and \
                    _size_floor(coder, value, specs[-1]) >= len(best[0]):
                continue  # cannot be strictly smaller: the result is that of trying it
            side = SideStreams()
            try:
                data = coder.encode(value, specs[-1], side)
            except ConfigError as exc:  # e.g. bitpack cannot code values this wide
                if len(coders) == 1:
                    raise
                failure = exc
                continue
            if side:
                raise ConfigError(f"{coder.codec_id}: array->bytes codecs cannot write side streams")
            for stage in self.byte_stages:
                data = stage.encode(data, specs[-1], SideStreams())
            data = bytes(as_bytes(data))
            if best is None or len(data) < len(best[0]):
                best = (data, coder, side.stats)
        if best is None:
            raise ConfigError(f"no candidate coder could code this tensor: {failure}")
        data, coder, coder_stats = best
        stats.update(coder_stats)
        applied = self if coder is self.coder else Pipeline(self.transforms + [coder] + self.byte_stages)
        return Encoded(data, streams, stats, applied)

    def decode(self, data: Any, streams: dict[str, Any], spec: ArraySpec,
               out: np.ndarray | None = None) -> np.ndarray:
        """Invert ``encode``; the result has exactly ``spec``'s shape and dtype.
        With ``out`` (a C-contiguous array of ``spec``) the result is written
        there and ``out`` is returned."""
        if not isinstance(spec, ArraySpec):
            raise InputError(f"spec must be an ArraySpec, got {type(spec).__name__}")
        if out is not None:
            spec.check_out(out, "decode")
        streams = {} if streams is None else streams
        if not isinstance(streams, Mapping):
            raise InputError(f"streams must map side-stream names to bytes, got "
                             f"{type(streams).__name__}")
        specs = self.specs(spec)
        stages = self.transforms + [self.coder]
        known = {f"{i}.{name}" for i in range(len(stages)) for name in stages[i].side_streams}
        for key in streams:
            if key not in known:
                raise FormatError(f"unexpected side stream {key!r} for pipeline {self.describe()}")
        value: Any = data
        for codec in reversed(self.byte_stages):
            value = codec.decode(value, specs[-1], SideStreams())
        for i in range(len(stages) - 1, -1, -1):
            prefix = f"{i}."
            side = SideStreams({k[len(prefix):]: v for k, v in streams.items() if k.startswith(prefix)})
            if i == 0 and out is not None:
                value = stages[i].decode_into(value, specs[i], side, out)
            else:
                value = stages[i].decode(value, specs[i], side)
            if not isinstance(value, np.ndarray):
                raise FormatError(f"{stages[i].codec_id} did not decode to an array")
            specs[i].empty_like_check(value, stages[i].codec_id)
        return value


def _size_floor(coder, value, spec) -> int:
    """``coder.size_floor``, or 0 where the floor cannot be worked out (the
    coder's own encode then reports the problem or is skipped as before)."""
    try:
        return coder.size_floor(value, spec)
    except WcodecError:
        return 0
