"""Decoding into caller-provided buffers (``Reader.get_tensor(name, out=...)``,
used by ``wcodec.torch.load_model`` to skip a copy) gives exactly what a
normal decode gives, for every kind of pipeline."""
import numpy as np
import pytest

import wcodec
from wcodec import InputError

RULES = {
    "q_group": [{"id": "quantize", "bits": 4, "granularity": "group", "group_size": 64},
                {"id": "bitpack", "bits": 4}],
    "q_group_short": [{"id": "quantize", "bits": 4, "granularity": "group", "group_size": 7},
                      {"id": "bitpack"}],
    "q_channel_axis1": [{"id": "quantize", "bits": 8, "granularity": "channel", "axis": 1},
                        {"id": "huffman"}],
    "q_affine": [{"id": "quantize", "bits": 5, "scheme": "affine"}, {"id": "huffman"}],
    "q_ternary": [{"id": "quantize", "mode": "ternary", "granularity": "channel"},
                  {"id": "zerorun"}],
    "q_step": [{"id": "quantize", "mode": "step", "step_ratio": 0.3}, {"id": "huffman"}],
    "cluster": [{"id": "prune", "sparsity": 0.8}, {"id": "cluster", "bits": 3},
                {"id": "sparse"}],
    "lossless": [{"id": "bytegroup"}],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_decode_into_matches_decode(tmp_path, dtype):
    rng = np.random.default_rng(0)
    tensors = {f"{name}.w": rng.standard_normal((33, 70)).astype(dtype) for name in RULES}
    tensors["scalar.w"] = np.array(1.5, dtype)
    recipe = {"rules": [{"match": [f"{name}.*"], "pipeline": p} for name, p in RULES.items()],
              "extends": "lossless"}
    path = tmp_path / "m.wcodec"
    wcodec.save_file(tensors, path, recipe=recipe)
    with wcodec.open(path) as f:
        for name in f.keys():
            expected = f.get_tensor(name)
            out = np.full(expected.shape, np.nan, dtype)
            got = f.get_tensor(name, out=out)
            assert got is out
            np.testing.assert_array_equal(np.atleast_1d(out).view(np.uint8),
                                          np.atleast_1d(expected).view(np.uint8))


def test_decode_into_rejects_unusable_buffers(tmp_path):
    path = tmp_path / "m.wcodec"
    wcodec.save_file({"w": np.ones((4, 6), np.float32)}, path, recipe="int4")
    with wcodec.open(path) as f:
        for bad in [np.empty((6, 4), np.float32), np.empty((4, 6), np.float64),
                    np.empty((4, 12), np.float32)[:, ::2], [[0.0] * 6] * 4]:
            with pytest.raises(InputError):
                f.get_tensor("w", out=bad)
        readonly = np.empty((4, 6), np.float32)
        readonly.flags.writeable = False
        with pytest.raises(InputError):
            f.get_tensor("w", out=readonly)
