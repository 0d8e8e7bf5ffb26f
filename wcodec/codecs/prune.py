"""``prune``: magnitude pruning (array->array, lossy). Stores nothing itself: it
produces exact zeros that the coders after it (zerorun, sparse, huffman...)
exploit; decoding is the identity.

* unstructured (``structure="none"``): zero the ``sparsity`` fraction of
  smallest-magnitude weights (exactly floor(sparsity*n)), or those with
  ``|w| <= threshold``;
* structured (``structure="channels"``): zero whole output channels/filters/rows
  (slices along ``axis``) with the smallest L1 or L2 norm.
``scope="global"`` ranks magnitudes across all tensors the rule selects; the
writer resolves it into a per-tensor ``threshold`` before encoding.

Error contract: kept weights are bit-exact; a pruned weight's error is its
magnitude, which is no larger than any kept weight's magnitude (unstructured).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..kernels import prune
from . import floatio
from .base import ARRAY_TO_ARRAY, Codec, Param, register


@register
class Prune(Codec):
    codec_id = "prune"
    kind = ARRAY_TO_ARRAY
    lossy = True
    params = {
        "sparsity": Param((float, int), None, lambda v: 0 <= v <= 1, "fraction of zeros, 0..1"),
        "threshold": Param((float, int), None, lambda v: v >= 0, "prune |w| <= threshold"),
        "structure": Param((str,), "none", lambda v: v in ("none", "channels"), "none|channels"),
        "norm": Param((str,), "l1", lambda v: v in ("l1", "l2"), "l1|l2"),
        "axis": Param((int,), 0, lambda v: -32 <= v < 32),
        "scope": Param((str,), "tensor", lambda v: v in ("tensor", "global"), "tensor|global"),
    }

    def __init__(self, **config):
        super().__init__(**config)
        if self.sparsity is None and self.threshold is None:
            raise ConfigError("prune: give sparsity or threshold")
        if self.structure == "channels" and (self.sparsity is None or self.scope == "global"):
            raise ConfigError("prune: structured pruning needs a sparsity and a per-tensor scope")

    def get_config(self):
        config = super().get_config()
        if self.threshold is not None and self.scope == "global":
            config.pop("sparsity", None)  # resolved: the threshold is what was applied
            config["scope"] = "tensor"
        if config.get("structure") == "none":
            for key in ("norm", "axis"):
                config.pop(key, None)
        return config

    def resolve(self, spec):
        floatio.check_float(spec, "prune")
        if self.structure == "channels":
            floatio.check_axis(self.axis, spec, "prune")
        return spec

    def encode(self, value, spec, side):
        x = floatio.to_float32(value, spec)
        if self.structure == "channels":
            if x.ndim == 0:
                keep = np.ones((), bool)
            else:
                keep = prune.structured_mask(x, sparsity=float(self.sparsity),
                                             axis=self.axis % x.ndim, norm=self.norm)
        elif self.threshold is not None:
            keep = prune.magnitude_mask(x, threshold=float(self.threshold))
        else:
            keep = prune.magnitude_mask(x, sparsity=float(self.sparsity))
        side.stats["pruned"] = float(1 - np.count_nonzero(keep) / keep.size) if keep.size else 0.0
        value = np.asarray(value)
        return np.where(keep.reshape(value.shape), value, value.dtype.type(0))

    def decode(self, value, spec, side):
        return value
