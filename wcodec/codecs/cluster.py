"""``cluster``: weight sharing by 1-D k-means (array->array, lossy), as in Deep
Compression. Output: uint8 indices into a codebook of 2^bits float32 centroids
stored in the side stream ``codebook``. With ``keep_zero`` (default) index 0
is the exact centroid 0.0, so pruned zeros stay exactly zero.

Error contract: every weight becomes a codebook value (its nearest centroid
after Lloyd iterations); zeros stay exact with keep_zero."""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..kernels import kmeans
from . import floatio
from .base import ARRAY_TO_ARRAY, ArraySpec, Codec, Param, register


@register
class Cluster(Codec):
    codec_id = "cluster"
    kind = ARRAY_TO_ARRAY
    lossy = True
    side_streams = ("codebook",)
    params = {
        "bits": Param((int,), 4, lambda v: 1 <= v <= 8, "1..8 (2^bits centroids)"),
        "init": Param((str,), "linear", lambda v: v in ("linear", "density", "random"),
                      "linear|density|random"),
        "seed": Param((int,), 0, lambda v: 0 <= v < 2**32),
        "keep_zero": Param((bool,), True),
    }

    def resolve(self, spec):
        floatio.check_float(spec, "cluster")
        return ArraySpec(spec.shape, "uint8")

    def encode(self, value, spec, side):
        x = floatio.to_float32(value, spec)
        k = 2 ** self.bits
        if self.keep_zero and k < 2:
            k = 2
        codebook, idx = kmeans.kmeans_1d(x, k, init=self.init, seed=self.seed,
                                         keep_zero=self.keep_zero)
        side["codebook"] = np.ascontiguousarray(codebook, dtype="<f4").tobytes()
        side.stats["clusters"] = float(k)
        return np.ascontiguousarray(idx, dtype=np.uint8).reshape(spec.shape)

    def decode(self, value, spec, side):
        k = 2 ** self.bits
        codebook = floatio.read_float32(side, "codebook", k, "cluster")
        idx = np.asarray(value)
        if idx.size and int(idx.max()) >= k:
            raise FormatError(f"cluster: index {int(idx.max())} outside a codebook of {k}")
        return floatio.from_float32(codebook[idx], spec)
