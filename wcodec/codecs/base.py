"""The codec contract and the registry.

A codec is one step of a tensor's pipeline. There are three kinds, applied in
this order when encoding (and in reverse when decoding):

* ``array->array`` transforms (cast, prune, cluster, quantize): array in, array out;
* exactly one ``array->bytes`` coder (raw, bytegroup, huffman, ...);
* ``bytes->bytes`` stages (zstd, ...).

Codecs never touch files. Besides its main value, a codec may write small named
*side streams* (a codebook, scales) which the container stores next to the
main data stream and hands back on decode.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from .. import dtypes
from ..errors import ConfigError, FormatError, InputError, UnknownCodec

ARRAY_TO_ARRAY = "array->array"
ARRAY_TO_BYTES = "array->bytes"
BYTES_TO_BYTES = "bytes->bytes"


@dataclass(frozen=True)
class ArraySpec:
    """Shape and wcodec dtype name of the array at one point of a pipeline."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        try:
            shape = tuple(operator.index(d) for d in self.shape)
        except TypeError:
            raise ConfigError(f"a shape is a tuple of integers, got {self.shape!r}") from None
        if any(d < 0 for d in shape) or any(isinstance(d, bool) for d in self.shape):
            raise ConfigError(f"a shape is a tuple of integers >= 0, got {self.shape!r}")
        dtypes.get(self.dtype)  # ConfigError for an unknown dtype
        object.__setattr__(self, "shape", shape)  # plain ints (operator.index gives int)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * dtypes.get(self.dtype).itemsize

    def check_out(self, out: Any, who: str) -> None:
        """InputError unless ``out`` can receive an array of this spec in place."""
        want = dtypes.get(self.dtype).numpy
        if (not isinstance(out, np.ndarray) or out.shape != self.shape or out.dtype != want
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise InputError(f"{who}: out must be a writeable C-contiguous {want} array of "
                             f"shape {self.shape}")

    def empty_like_check(self, array: np.ndarray, who: str) -> np.ndarray:
        """Check that a decoded array matches this spec; FormatError if not."""
        want = dtypes.get(self.dtype).numpy
        if array.shape != self.shape or array.dtype != want:
            raise FormatError(
                f"{who} decoded shape {array.shape} {array.dtype}, expected {self.shape} {want}"
            )
        return array


def max_coded_size(spec: ArraySpec) -> int:
    """Upper bound on the bytes an array->bytes coder may produce for ``spec``:
    bytes->bytes decoders refuse to inflate past it (decompression-bomb guard)."""
    return 2 * spec.nbytes + (1 << 20)


@dataclass(frozen=True)
class Param:
    """One configuration field: its type(s), default and an optional check."""

    types: tuple[type, ...]
    default: Any = None
    check: Callable[[Any], bool] | None = None
    help: str = ""
    required: bool = False


class Codec:
    """Base class: subclasses set ``codec_id``, ``kind``, ``params`` and
    implement ``encode``/``decode`` (and ``resolve`` for array->array)."""

    codec_id: ClassVar[str]
    kind: ClassVar[str]
    lossy: ClassVar[bool] = False
    params: ClassVar[dict[str, Param]] = {}
    side_streams: ClassVar[tuple[str, ...]] = ()  # names of the side streams it may write
    encoder_only: ClassVar[bool] = False  # True: resolved to another codec before writing

    def __init__(self, /, **config: Any) -> None:
        for key in config:
            if key not in self.params:
                raise ConfigError(f"codec {self.codec_id!r}: unknown option {key!r}")
        for key, param in self.params.items():
            if key in config and config[key] is not None:
                value = config[key]
            elif param.required:
                raise ConfigError(f"codec {self.codec_id!r}: option {key!r} is required")
            else:
                value = param.default
            if value is not None:
                if isinstance(value, bool) and bool not in param.types:
                    raise ConfigError(f"codec {self.codec_id!r}: option {key!r} must not be a bool")
                if not isinstance(value, param.types):
                    raise ConfigError(
                        f"codec {self.codec_id!r}: option {key!r}={value!r} has the wrong type"
                    )
                if param.check is not None and not param.check(value):
                    raise ConfigError(f"codec {self.codec_id!r}: option {key!r}={value!r} is out of range"
                                      + (f" ({param.help})" if param.help else ""))
            setattr(self, key, value)

    # -- configuration -------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable config, including ``id``; options left at None are omitted."""
        config: dict[str, Any] = {"id": self.codec_id}
        for key in self.params:
            value = getattr(self, key)
            if value is not None:
                config[key] = value
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Codec":
        config = dict(config)
        config.pop("id", None)
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    # -- behaviour -----------------------------------------------------
    def resolve(self, spec: ArraySpec) -> ArraySpec:
        """The spec of what ``encode`` produces from an array of ``spec``
        (array->array codecs). Raise ConfigError if the codec cannot take it."""
        return spec

    def encode(self, value: Any, spec: ArraySpec, side: dict[str, bytes]) -> Any:
        raise NotImplementedError

    def decode(self, value: Any, spec: ArraySpec, side: dict[str, bytes]) -> Any:
        raise NotImplementedError

    def size_floor(self, value: Any, spec: ArraySpec) -> int:
        """A byte count that ``encode(value, spec, ...)`` never goes below (0 when
        nothing cheaper than encoding is known). ``auto`` skips a coder whose floor
        already reaches the best size found, so a floor is never too high."""
        return 0

    def decode_into(self, value: Any, spec: ArraySpec, side: dict[str, bytes],
                    out: np.ndarray) -> np.ndarray:
        """``decode`` written into ``out`` (an array of ``spec``); codecs that can
        produce their result in place override this to save a copy."""
        np.copyto(out, spec.empty_like_check(np.asarray(self.decode(value, spec, side)),
                                             self.codec_id))
        return out


_REGISTRY: dict[str, type[Codec]] = {}


def register(cls: type[Codec]) -> type[Codec]:
    """Class decorator adding a codec to the registry under its ``codec_id``."""
    if cls.kind not in (ARRAY_TO_ARRAY, ARRAY_TO_BYTES, BYTES_TO_BYTES):
        raise TypeError(f"bad codec kind {cls.kind!r}")
    _REGISTRY[cls.codec_id] = cls
    return cls


def codec_ids() -> list[str]:
    return sorted(_REGISTRY)


def codec_class(codec_id: str) -> type[Codec]:
    try:
        return _REGISTRY[codec_id]
    except (KeyError, TypeError):
        raise UnknownCodec(
            f"unknown codec id {codec_id!r}; this wcodec knows: {', '.join(codec_ids())}"
        ) from None


def get_codec(config: dict[str, Any] | Codec) -> Codec:
    """A codec instance from its config dict (``{"id": ..., **options}``)."""
    if isinstance(config, Codec):
        return config
    if not isinstance(config, dict) or "id" not in config:
        raise ConfigError(f"a codec config must be a dict with an 'id', got {config!r}")
    return codec_class(config["id"]).from_config(config)


def as_bytes(value: Any) -> memoryview:
    """A flat byte view of bytes/bytearray/memoryview/uint8 arrays."""
    if isinstance(value, np.ndarray):
        return memoryview(np.ascontiguousarray(value).view(np.uint8).reshape(-1))
    try:
        mv = memoryview(value)
    except TypeError:
        raise InputError(f"expected bytes-like data, got {type(value).__name__}") from None
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


class SideStreams(dict):
    """Side streams of one stage; a missing one is a FormatError, not a KeyError.

    While encoding, a codec may also put numbers about its work into ``stats``
    (sparsity, levels, entropy bound...); they are stored in the table of
    contents and shown by ``wcodec info``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats: dict[str, float] = {}

    def __missing__(self, key: str):
        raise FormatError(f"the file lacks the side stream {key!r} this codec needs")
