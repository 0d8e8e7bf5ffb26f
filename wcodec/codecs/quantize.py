"""``quantize``: scalar quantization (array->array, lossy) to small integers
plus per-unit float32 parameters in side streams.

Modes:
* ``uniform``: ``bits`` (2..8) levels, ``scheme`` symmetric (int8 levels in
  [-(2^(b-1)-1), 2^(b-1)-1], side stream ``scale``) or affine (uint8 levels in
  [0, 2^b-1], side streams ``scale`` and ``zero_point``), per ``tensor``,
  ``channel`` (slices along ``axis``) or ``group`` of ``group_size``
  consecutive weights (like GGUF blocks). Error <= scale/2 per weight.
* ``ternary``: {-1, 0, +1} x ``scale`` per tensor or channel (TTQ/3LC):
  threshold = threshold_ratio x mean|w|.
* ``step``: entropy-constrained scalar quantization: one step per channel
  (``step`` absolute or ``step_ratio`` x std of the channel), int32 levels not
  capped by a bit width (the entropy coder after it sets the rate; rare large
  levels are escaped by the coder). Error <= step/2 per weight.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..kernels import quantize as q
from . import floatio
from .base import ARRAY_TO_ARRAY, ArraySpec, Codec, Param, register


@register
class Quantize(Codec):
    codec_id = "quantize"
    kind = ARRAY_TO_ARRAY
    lossy = True
    params = {
        "mode": Param((str,), "uniform", lambda v: v in ("uniform", "ternary", "step"),
                      "uniform|ternary|step"),
        "bits": Param((int,), 8, lambda v: 2 <= v <= 8, "2..8 (uniform mode)"),
        "scheme": Param((str,), "symmetric", lambda v: v in ("symmetric", "affine")),
        "granularity": Param((str,), "channel", lambda v: v in ("tensor", "channel", "group")),
        "group_size": Param((int,), 64, lambda v: 1 <= v <= 1 << 30),
        "axis": Param((int,), 0, lambda v: -32 <= v < 32),
        "step": Param((float, int), None, lambda v: v > 0, "absolute step (step mode)"),
        "step_ratio": Param((float, int), None, lambda v: v > 0, "step = ratio x std (step mode)"),
        "threshold_ratio": Param((float, int), 0.7, lambda v: v >= 0, "ternary threshold"),
    }

    def __init__(self, **config):
        super().__init__(**config)
        if self.mode == "step" and (self.step is None) == (self.step_ratio is None):
            raise ConfigError("quantize: step mode needs exactly one of step or step_ratio")
        if self.mode in ("ternary", "step") and self.granularity == "group":
            raise ConfigError(f"quantize: {self.mode} mode is per tensor or per channel")

    @property
    def side_streams(self) -> tuple[str, ...]:
        if self.mode == "step":
            return ("step",)
        if self.mode == "uniform" and self.scheme == "affine":
            return ("scale", "zero_point")
        return ("scale",)

    def get_config(self):
        """Only the options that matter for the mode are written."""
        keep = {"uniform": ("bits", "scheme", "granularity", "axis", "group_size"),
                "ternary": ("granularity", "axis", "threshold_ratio"),
                "step": ("granularity", "axis", "step", "step_ratio")}[self.mode]
        config = {"id": self.codec_id, "mode": self.mode}
        for key in keep:
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        if self.granularity != "channel":
            config.pop("axis", None)
        if self.granularity != "group":
            config.pop("group_size", None)
        return config

    # -- shapes --------------------------------------------------------
    def _axis(self, spec: ArraySpec) -> int:
        return self.axis % len(spec.shape) if spec.shape else 0

    def units(self, spec: ArraySpec) -> int:
        """How many scales/steps the tensor has."""
        if self.granularity == "tensor":
            return 1
        if self.granularity == "group":
            return math.ceil(spec.size / self.group_size)
        return spec.shape[self._axis(spec)] if spec.shape else 1

    def resolve(self, spec):
        floatio.check_float(spec, "quantize")
        if self.granularity == "channel":
            floatio.check_axis(self.axis, spec, "quantize")
        if self.mode == "step":
            levels = "int32"
        elif self.mode == "uniform" and self.scheme == "affine":
            levels = "uint8"
        else:
            levels = "int8"
        return ArraySpec(spec.shape, levels)

    # -- coding --------------------------------------------------------
    def encode(self, value, spec, side):
        x = floatio.to_float32(value, spec)
        if self.mode == "uniform":
            r = q.quantize_uniform(x, self.bits, scheme=self.scheme, granularity=self.granularity,
                                   group_size=self.group_size if self.granularity == "group" else None,
                                   axis=self._axis(spec))
            side["scale"] = r.scale.astype("<f4").tobytes()
            if r.zero_point is not None:
                side["zero_point"] = r.zero_point.astype("u1").tobytes()
        elif self.mode == "ternary":
            r = q.quantize_ternary(x, granularity=self.granularity, axis=self._axis(spec),
                                   threshold_ratio=float(self.threshold_ratio))
            side["scale"] = r.scale.astype("<f4").tobytes()
        else:
            axis = None if self.granularity == "tensor" else self._axis(spec)
            r = q.quantize_step(x, step=None if self.step is None else float(self.step),
                                step_ratio=None if self.step_ratio is None else float(self.step_ratio),
                                axis=axis)
            side["step"] = r.step.astype("<f4").tobytes()
        levels = np.ascontiguousarray(r.q).reshape(spec.shape)
        side.stats["levels"] = float(np.unique(levels).size) if levels.size else 0.0
        return levels

    def decode(self, value, spec, side):
        return floatio.from_float32(q.dequantize(self._result(value, spec, side)), spec)

    def decode_into(self, value, spec, side, out):
        if spec.dtype != "float32":
            return super().decode_into(value, spec, side, out)
        return q.dequantize(self._result(value, spec, side), out=out)

    def _result(self, value, spec, side):
        """The kernel's result object from the levels and side streams."""
        n = self.units(spec)
        levels = np.asarray(value)
        if self.mode == "uniform":
            scale = floatio.read_float32(side, "scale", n, "quantize")
            zero = None
            if self.scheme == "affine":
                zero = floatio.read_array(side, "zero_point", n, np.dtype("u1"), "quantize")
            r = q.QuantResult(levels, scale, zero, self.bits, self.scheme, self.granularity,
                              self._axis(spec) if self.granularity == "channel" else 0,
                              self.group_size if self.granularity == "group" else None)
        elif self.mode == "ternary":
            scale = floatio.read_float32(side, "scale", n, "quantize")
            r = q.TernaryResult(levels, scale, self.granularity,
                                self._axis(spec) if self.granularity == "channel" else 0)
        else:
            step = floatio.read_float32(side, "step", n, "quantize")
            r = q.StepResult(levels, step, None if self.granularity == "tensor" else self._axis(spec))
        return r
