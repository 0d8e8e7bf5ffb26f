"""Scalar quantization kernels: uniform (symmetric / affine), ternary and
entropy-constrained fixed-step quantization, with their dequantizers.

Shared conventions
------------------
* Inputs are real arrays (ints or floats) of any shape, finite, with
  magnitudes within the float32 range; anything else raises ``InputError``.
  Bad parameters raise ``ConfigError``.
* A *channel* is a slice ``x[..., i, ...]`` along ``axis`` (an output channel
  for ``axis=0``).  A 0-d array is one channel (``axis`` ignored).  On a 1-D
  array every element is its own channel; use per-tensor granularity for
  vectors such as biases.
* A *group* is a run of ``group_size`` consecutive weights in C order of the
  flattened tensor; the last group may be shorter.  ``axis`` is ignored.
* Per-unit parameters (``scale``, ``zero_point``, ``step``) are 1-D arrays
  with one entry per unit: shape ``(1,)`` per tensor, ``(x.shape[axis],)``
  per channel, ``(ceil(x.size / group_size),)`` per group.
* All returned arrays are C-contiguous; scales and steps are float32 and
  dequantized arrays are float32.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from wcodec.errors import ConfigError, InputError

__all__ = [
    "QuantResult",
    "TernaryResult",
    "StepResult",
    "quantize_uniform",
    "quantize_ternary",
    "quantize_step",
    "dequantize",
    "SCHEMES",
    "GRANULARITIES",
]

SCHEMES = ("symmetric", "affine")
GRANULARITIES = ("tensor", "channel", "group")

_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)
_I32_MAX = float(np.iinfo(np.int32).max)


# ---------------------------------------------------------------------------
# result types
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class QuantResult:
    """Output of :func:`quantize_uniform`.

    ``q``: integer levels, shape of the input; int8 in
    ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` (symmetric) or uint8 in
    ``[0, 2**bits - 1]`` (affine).  ``scale``: float32 per unit (> 0).
    ``zero_point``: uint8 per unit in ``[0, 2**bits - 1]`` (affine) or None
    (symmetric); do arithmetic on it in a wider type.  ``axis`` is the
    normalised channel axis (0 unless ``granularity == "channel"``);
    ``group_size`` is set only for ``"group"``.
    Reconstruction: ``(q - zero_point) * scale`` per unit.
    """

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None
    bits: int
    scheme: str
    granularity: str
    axis: int = 0
    group_size: int | None = None

    def dequantize(self) -> np.ndarray:
        return dequantize(self)


@dataclass(eq=False)
class TernaryResult:
    """Output of :func:`quantize_ternary`.

    ``q``: int8 in {-1, 0, 1}, shape of the input.  ``scale``: float32 per
    unit (``(1,)`` per tensor, ``(x.shape[axis],)`` per channel; 0 for a unit
    with no kept weight).  Reconstruction: ``q * scale``.
    """

    q: np.ndarray
    scale: np.ndarray
    granularity: str
    axis: int = 0

    def dequantize(self) -> np.ndarray:
        return dequantize(self)


@dataclass(eq=False)
class StepResult:
    """Output of :func:`quantize_step`.

    ``q``: int32 levels, shape of the input (not bounded by a bit width).
    ``step``: float32 per unit (> 0), shape ``(x.shape[axis],)`` or ``(1,)``
    when ``axis`` is None (one step for the whole tensor; also stored for a
    0-d input).  Reconstruction: ``q * step``.
    """

    q: np.ndarray
    step: np.ndarray
    axis: int | None = 0

    def dequantize(self) -> np.ndarray:
        return dequantize(self)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _input(x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise InputError(f"x must hold real integers or floats, got dtype {a.dtype}")
    if a.size and a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InputError("x must be finite (no NaN or inf)")
        if a.dtype.itemsize > 4 and float(np.abs(a).max()) > _F32_MAX:
            raise InputError("x has magnitudes beyond the float32 range")
    return a


def int_param(value, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (bools refused); ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be {rng}, got {value!r}")
    return v


def _real_param(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _axis(axis, ndim: int) -> int:
    """Normalised channel axis (0 for a 0-d array, whatever ``axis`` is)."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ConfigError(f"axis must be an integer, got {axis!r}")
    if ndim == 0:
        return 0
    if not -ndim <= int(axis) < ndim:
        raise ConfigError(f"axis {axis} is out of range for a {ndim}-d array")
    return int(axis) % ndim


def _ceil_f32(v: np.ndarray) -> np.ndarray:
    """float64 values rounded *up* to float32."""
    r = v.astype(np.float32)
    low = r.astype(np.float64) < v
    if low.any():
        r[low] = np.nextafter(r[low], np.float32(np.inf))
    return r


def _rows(a: np.ndarray, granularity: str, axis: int, group_size: int | None) -> np.ndarray:
    """2-D view/copy with one row per unit (tensor / channel / group)."""
    if granularity == "tensor":
        return a.reshape(1, a.size)
    if granularity == "channel":
        if a.ndim == 0:
            return a.reshape(1, 1)
        inner = math.prod(a.shape[:axis] + a.shape[axis + 1:])
        return np.moveaxis(a, axis, 0).reshape(a.shape[axis], inner)
    # group: pad the flat array to whole groups (padding is dropped later)
    flat = a.reshape(-1)
    n_groups = -(-flat.size // group_size)
    pad = n_groups * group_size - flat.size
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, dtype=flat.dtype)])
    return flat.reshape(n_groups, group_size)


def _unrows(rows: np.ndarray, shape: tuple, granularity: str, axis: int) -> np.ndarray:
    """Inverse of :func:`_rows`: a C-contiguous array of ``shape``."""
    if granularity == "tensor" or (granularity == "channel" and len(shape) == 0):
        return np.asarray(rows.reshape(shape), order="C")
    if granularity == "channel":
        moved = (shape[axis],) + shape[:axis] + shape[axis + 1:]
        return np.asarray(np.moveaxis(rows.reshape(moved), 0, axis), order="C")
    n = math.prod(shape)
    return np.asarray(rows.reshape(-1)[:n].reshape(shape), order="C")


# ---------------------------------------------------------------------------
# uniform quantization
# ---------------------------------------------------------------------------

def quantize_uniform(x, bits: int, *, scheme: str = "symmetric", granularity: str = "tensor",
                     group_size: int | None = None, axis: int = 0) -> QuantResult:
    """Uniform ``bits``-bit quantization (``bits`` in 2..8).

    * ``scheme="symmetric"``: ``scale = max|x| / qmax`` with
      ``qmax = 2**(bits-1) - 1``; ``q = clip(round(x / scale), -qmax, qmax)``
      as int8.
    * ``scheme="affine"``: over the range ``[min(x, 0), max(x, 0)]`` (zero is
      always exactly representable), ``scale = range / (2**bits - 1)``,
      ``zero_point = round(-min / scale)``, ``q = clip(round(x / scale) +
      zero_point, 0, 2**bits - 1)`` as uint8.

    ``granularity`` picks one scale per tensor, per channel (slices along
    ``axis``) or per group of ``group_size`` consecutive C-order weights
    (``group_size`` required for, and only allowed with, ``"group"``).
    Scales are rounded *up* to float32 (so no level is clipped beyond half a
    step) and are 1.0 for an all-zero (or empty) unit.  Rounding is half to
    even.

    Contract: ``|x - dequantize(r)| <= scale / 2`` for every element, up to
    the float32 rounding of the dequantized value.
    """
    a = _input(x)
    bits = int_param(bits, "bits", 2, 8)
    if scheme not in SCHEMES:
        raise ConfigError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity == "group":
        if group_size is None:
            raise ConfigError("granularity='group' needs group_size")
        group_size = int_param(group_size, "group_size", 1)
    elif group_size is not None:
        raise ConfigError("group_size is only valid with granularity='group'")
    ax = _axis(axis, a.ndim) if granularity == "channel" else 0

    rows = _rows(a, granularity, ax, group_size).astype(np.float64, copy=False)
    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        lo_q, hi_q, dtype = -qmax, qmax, np.int8
        span = np.max(np.abs(rows), axis=1, initial=0.0)
        scale = _unit_scale(span, qmax)
        levels = rows / scale.astype(np.float64)[:, None]
        zp = None
    else:
        qmax = 2 ** bits - 1
        lo_q, hi_q, dtype = 0, qmax, np.uint8
        mn = np.min(rows, axis=1, initial=0.0)
        mx = np.max(rows, axis=1, initial=0.0)
        scale = _unit_scale(mx - mn, qmax)
        s64 = scale.astype(np.float64)
        zp64 = np.clip(np.rint(-mn / s64), 0, qmax)
        levels = rows / s64[:, None]
        levels += zp64[:, None]
        zp = zp64.astype(np.uint8)
    np.rint(levels, out=levels)
    np.clip(levels, lo_q, hi_q, out=levels)
    q = _unrows(levels.astype(dtype), a.shape, granularity, ax)
    return QuantResult(q=q, scale=scale, zero_point=zp, bits=bits, scheme=scheme,
                       granularity=granularity, axis=ax,
                       group_size=group_size if granularity == "group" else None)


def _unit_scale(span: np.ndarray, qmax: int) -> np.ndarray:
    """float32 scale per unit: ``span / qmax`` rounded up, 1.0 for span 0,
    never below the smallest normal float32."""
    scale = _ceil_f32(span / qmax)
    scale[span == 0] = 1.0
    np.maximum(scale, np.float32(_F32_TINY), out=scale)
    return scale


# ---------------------------------------------------------------------------
# ternary quantization
# ---------------------------------------------------------------------------

def quantize_ternary(x, *, granularity: str = "tensor", axis: int = 0,
                     threshold_ratio: float = 0.7) -> TernaryResult:
    """Ternary quantization to ``{-1, 0, +1} * scale`` (TTQ / 3LC style).

    Per unit (tensor, or channel = slice along ``axis``):
    ``threshold = threshold_ratio * mean|x|``; weights with
    ``|x| > threshold`` keep their sign (``q = sign(x)``), the rest become 0;
    ``scale = mean |x|`` over the kept weights (the least-squares scale for
    that support; 0 if nothing is kept).  ``threshold_ratio >= 0``.

    Error bound (not a fixed fraction of the scale): a zeroed weight errs by
    ``|x| <= threshold``; a kept one by ``||x| - scale|``.
    """
    a = _input(x)
    if granularity not in ("tensor", "channel"):
        raise ConfigError(f"granularity must be 'tensor' or 'channel', got {granularity!r}")
    ratio = _real_param(threshold_ratio, "threshold_ratio")
    if ratio < 0:
        raise ConfigError(f"threshold_ratio must be >= 0, got {threshold_ratio!r}")
    ax = _axis(axis, a.ndim) if granularity == "channel" else 0

    rows = _rows(a, granularity, ax, None).astype(np.float64, copy=False)
    mag = np.abs(rows)
    width = max(rows.shape[1], 1)
    thr = ratio * (mag.sum(axis=1) / width)
    keep = mag > thr[:, None]
    n_kept = np.count_nonzero(keep, axis=1)
    kept_sum = np.sum(mag, axis=1, where=keep)
    scale = (kept_sum / np.maximum(n_kept, 1)).astype(np.float32)
    q = np.sign(rows).astype(np.int8)
    q *= keep
    return TernaryResult(q=_unrows(q, a.shape, granularity, ax), scale=scale,
                         granularity=granularity, axis=ax)


# ---------------------------------------------------------------------------
# fixed-step (entropy-constrained) quantization
# ---------------------------------------------------------------------------

def quantize_step(x, *, step: float | None = None, step_ratio: float | None = None,
                  axis: int | None = 0) -> StepResult:
    """Uniform quantization with a fixed step and unbounded int32 levels
    (for entropy coding of the levels afterwards).

    One step per channel (slice along ``axis``), or for the whole tensor with
    ``axis=None``.  Give exactly one of:

    * ``step > 0``: the same absolute step for every unit;
    * ``step_ratio > 0``: ``step = step_ratio * std(unit)``; when a unit's std
      is 0 (constant or single-element unit) ``max|unit|`` stands in for it,
      and a step of 1.0 is used for an all-zero or empty unit; steps are
      clamped into the normal float32 range.

    Steps are stored as float32 (never 0) and used as stored.
    ``q = round(x / step)`` (half to even).  ConfigError if an absolute step
    is not a positive float32 or the levels would not fit in int32.

    Contract: ``|x - q * step| <= step / 2`` for every element, up to the
    float32 rounding of the dequantized value.
    """
    a = _input(x)
    if (step is None) == (step_ratio is None):
        raise ConfigError("give exactly one of step= or step_ratio=")
    if axis is None:
        gran, ax = "tensor", None
    else:
        gran, ax = "channel", _axis(axis, a.ndim)
    rows = _rows(a, gran, ax or 0, None).astype(np.float64, copy=False)
    n_units = rows.shape[0]

    if step is not None:
        s = _real_param(step, "step")
        if s <= 0:
            raise ConfigError(f"step must be > 0, got {step!r}")
        steps64 = np.full(n_units, s)
    else:
        r = _real_param(step_ratio, "step_ratio")
        if r <= 0:
            raise ConfigError(f"step_ratio must be > 0, got {step_ratio!r}")
        if rows.shape[1]:
            sigma = rows.std(axis=1)
            fallback = np.max(np.abs(rows), axis=1)
        else:
            sigma = fallback = np.zeros(n_units)
        sigma = np.where(sigma > 0, sigma, fallback)
        # clamped into the normal float32 range (subnormal or huge data)
        steps64 = np.clip(np.where(sigma > 0, r * sigma, 1.0), _F32_TINY, _F32_MAX)
    if n_units and float(steps64.max()) > _F32_MAX:
        raise ConfigError("step overflows float32")
    steps = steps64.astype(np.float32)
    if n_units and not (steps > 0).all():
        raise ConfigError("step underflows to 0 in float32")

    levels = rows / steps.astype(np.float64)[:, None]
    if levels.size and float(np.abs(levels).max()) >= _I32_MAX:
        raise ConfigError("step too small for the data: levels exceed int32")
    np.rint(levels, out=levels)
    q = _unrows(levels.astype(np.int32), a.shape, gran, ax or 0)
    return StepResult(q=q, step=steps, axis=ax)


# ---------------------------------------------------------------------------
# dequantization
# ---------------------------------------------------------------------------

def _unit_param(param, n_units: int, name: str) -> np.ndarray:
    """A per-unit parameter as a float32 column, checked against the units."""
    p = np.asarray(param)
    if p.dtype.kind not in "iuf" or p.ndim != 1 or p.size != n_units:
        raise InputError(f"{name} must be a 1-D array of {n_units} numbers, "
                         f"got shape {p.shape} dtype {p.dtype}")
    return p.astype(np.float32, copy=False)[:, None]


def _result_rows(q, granularity: str, axis, group_size) -> tuple[np.ndarray, str, int]:
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise InputError(f"levels must be integers, got dtype {q.dtype}")
    if granularity not in GRANULARITIES:
        raise InputError(f"unknown granularity {granularity!r}")
    try:
        ax = _axis(axis, q.ndim) if granularity == "channel" else 0
        if granularity == "group":
            group_size = int_param(group_size, "group_size", 1)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    return _rows(q, granularity, ax, group_size), granularity, ax


def _clip_f32_range(out: np.ndarray, unit: np.ndarray, max_level: int) -> None:
    """Clip ``out`` in place to the finite float32 range when ``|level| *
    unit`` could exceed it (a scale rounded up on data near the float32 limit):
    the input was finite float32, so clipping only reduces the error."""
    if unit.size and float(np.abs(unit).max()) * max_level > _F32_MAX:
        np.clip(out, -_F32_MAX, _F32_MAX, out=out)


def _rows_buffer(rows: np.ndarray, shape: tuple, gran: str, ax: int, out) -> np.ndarray:
    """Where to compute the per-unit rows: ``out`` itself (viewed as rows) when
    the rows are just a reshape of it, else a new float32 buffer."""
    if (out is not None and out.dtype == np.float32 and out.flags.c_contiguous
            and out.shape == tuple(shape) and rows.size == out.size
            and (gran != "channel" or ax == 0 or len(shape) == 0)):
        return out.reshape(rows.shape)
    return np.empty(rows.shape, dtype=np.float32)


def _finish(rows_out: np.ndarray, shape: tuple, gran: str, ax: int, out) -> np.ndarray:
    result = _unrows(rows_out, shape, gran, ax)
    if out is None:
        return result
    if not np.shares_memory(result, out):
        np.copyto(out, result)
    return out


def dequantize(result, out: np.ndarray | None = None) -> np.ndarray:
    """Reconstruct a float32 array (C-contiguous, shape of ``q``) from any
    result of this module: ``(q - zero_point) * scale``, ``q * scale`` or
    ``q * step`` per unit.  InputError if the fields do not fit together.
    With ``out`` (float32, shape of ``q``) the values are written there (directly
    when the layout allows, saving a copy) and ``out`` is returned."""
    if isinstance(result, QuantResult):
        rows, gran, ax = _result_rows(result.q, result.granularity, result.axis,
                                      result.group_size)
        scale = _unit_param(result.scale, rows.shape[0], "scale")
        shape = np.shape(result.q)
        buf = _rows_buffer(rows, shape, gran, ax, out)
        with np.errstate(over="ignore"):
            if result.zero_point is not None:
                np.subtract(rows, _unit_param(result.zero_point, rows.shape[0], "zero_point"),
                            out=buf)
                buf *= scale
            else:  # one fused pass: int levels times float32 scales
                np.multiply(rows, scale, out=buf)
        _clip_f32_range(buf, scale, 255)
        return _finish(buf, shape, gran, ax, out)
    if isinstance(result, TernaryResult):
        rows, gran, ax = _result_rows(result.q, result.granularity, result.axis, None)
        shape = np.shape(result.q)
        buf = _rows_buffer(rows, shape, gran, ax, out)
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(rows, _unit_param(result.scale, rows.shape[0], "scale"), out=buf)
        return _finish(buf, shape, gran, ax, out)
    if isinstance(result, StepResult):
        gran = "tensor" if result.axis is None else "channel"
        rows, gran, ax = _result_rows(result.q, gran, result.axis, None)
        # float64 product: int32 levels beyond 2**24 are not exact in float32
        wide = rows.astype(np.float64)
        step = _unit_param(result.step, rows.shape[0], "step")
        wide *= step.astype(np.float64)
        _clip_f32_range(wide, step, 2 ** 31)
        return _finish(wide.astype(np.float32), np.shape(result.q), gran, ax, out)
    raise InputError(f"cannot dequantize a {type(result).__name__}")
