"""``cluster``: weight sharing by 1-D k-means (array->array, lossy), as in Deep
Compression. Output: uint8 indices into a codebook of 2^bits centroids stored
in the side stream ``codebook`` as float32, or float16 with ``codebook_dtype``.
With ``keep_zero`` (default) index 0 is the exact centroid 0.0, so pruned zeros
stay exactly zero.

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
        # absent = float32 (the writer leaves it out then: format-1.0 readers read such files)
        "codebook_dtype": Param((str,), None, lambda v: v in ("float32", "float16"),
                                "float32|float16"),
    }

    def _codebook_dtype(self) -> np.dtype:
        return np.dtype("<f2" if self.codebook_dtype == "float16" else "<f4")

    def resolve(self, spec):
        floatio.check_float(spec, "cluster")
        return ArraySpec(spec.shape, "uint8")

    def encode(self, value, spec, side):
        x = floatio.to_float32(value, spec)
        k = 2 ** self.bits
        if self.keep_zero and k < 2:
            k = 2
        stored = self._codebook_dtype()
        codebook, idx = kmeans.kmeans_1d(x, k, init=self.init, seed=self.seed,
                                         keep_zero=self.keep_zero, codebook_dtype=stored.type)
        side["codebook"] = np.ascontiguousarray(codebook, dtype=stored).tobytes()
        side.stats["clusters"] = float(k)
        return np.ascontiguousarray(idx, dtype=np.uint8).reshape(spec.shape)

    def decode(self, value, spec, side):
        k = 2 ** self.bits
        codebook = floatio.read_array(side, "codebook", k, self._codebook_dtype(), "cluster")
        codebook = codebook.astype(np.float32)  # exact from float16
        idx = np.asarray(value)
        if idx.size and int(idx.max()) >= k:
            raise FormatError(f"cluster: index {int(idx.max())} outside a codebook of {k}")
        return floatio.from_float32(codebook[idx], spec)
