"""The lossy recipes (int8, int4, deep-compression, auto) on a small model-like
state dict, ``with_options``, global pruning, a TOML rate-allocation recipe
and the stats ``wcodec info --json`` shows for lossy tensors."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wcodec
from conftest import assert_bits_equal, bfloat16_tensor, storage_dtype
from wcodec import Pipeline, get_recipe
from wcodec.codecs import ArraySpec
from wcodec.codecs.cast import bfloat16_bits_to_float32, float32_to_bfloat16_bits
from wcodec.kernels.prune import prune_count
from wcodec.recipes import MIN_LOSSY_SIZE, RECIPES

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSSY_RECIPES = ["int8", "int4", "deep-compression", "auto"]
CODERS = {"huffman", "zerorun", "sparse", "bitpack"}


def make_model(seed: int = 0) -> tuple[dict, dict, dict]:
    """(tensors to save, expected canonical arrays, dtype names).

    Weight matrices/kernels >= 4096 elements in float32, float16 and bfloat16
    (a torch tensor), biases, LayerNorm parameters, a small matrix below the
    lossy size, and int64 buffers (one of them a large 2-D one)."""
    rng = np.random.default_rng(seed)

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    head_bits = float32_to_bfloat16_bits(normal((64, 80), 0.05))
    expected = {
        "encoder.layer.0.attn.weight": normal((96, 64), 0.02),
        "encoder.layer.0.attn.bias": normal((96,), 0.01),
        "encoder.layer.0.mlp.weight": normal((128, 64), 0.05),
        "encoder.layer.0.mlp.bias": normal((128,), 0.01),
        "encoder.layer.0.norm.weight": 1 + normal((64,), 0.1),
        "encoder.layer.0.norm.bias": normal((64,), 0.01),
        "embed.weight": normal((100, 64), 1.0).astype(np.float16),
        "head.weight": head_bits,
        "conv.weight": normal((64, 8, 3, 3), 0.1),
        "small.weight": normal((16, 16), 0.1),
        "position_ids": np.arange(512, dtype=np.int64).reshape(1, 512),
        "token_counts": rng.integers(0, 10 ** 6, (100, 64)).astype(np.int64),
    }
    kinds = {name: a.dtype.name for name, a in expected.items()}
    kinds["head.weight"] = "bfloat16"
    given_ = dict(expected)
    given_["head.weight"] = bfloat16_tensor(head_bits)
    return given_, expected, kinds


GIVEN, EXPECTED, KINDS = make_model()
LOSSY = {"encoder.layer.0.attn.weight", "encoder.layer.0.mlp.weight", "embed.weight",
         "head.weight", "conv.weight"}
WEIGHT_NUMEL = sum(EXPECTED[n].size for n in LOSSY)


def values(array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return bfloat16_bits_to_float32(array).astype(np.float64)
    return np.asarray(array).astype(np.float64)


def rows(array: np.ndarray) -> np.ndarray:
    """One row per output channel (axis 0)."""
    return array.reshape(array.shape[0], -1)


def rounding(dtype: str) -> float:
    return {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}.get(dtype, 2.0 ** -23)


def f32(reader, name: str, stream: str) -> np.ndarray:
    return np.frombuffer(bytes(reader.read_stream(name, stream)), "<f4").astype(np.float64)


_SAVED: dict = {}


def saved(recipe, tmp_path_factory, key=None):
    """Save the model once per recipe (module-wide cache); returns (path, loaded)."""
    key = key or recipe
    if key not in _SAVED:
        path = str(tmp_path_factory.mktemp("recipes") / f"{key}.wcodec")
        wcodec.save_file(GIVEN, path, recipe=recipe)
        _SAVED[key] = (path, wcodec.load_file(path))
    return _SAVED[key]


# ---------------------------------------------------------------------------
# built-in lossy recipes
# ---------------------------------------------------------------------------

def expected_pipeline_ok(recipe: str, config: list[dict]) -> None:
    ids = [c["id"] for c in config]
    if recipe == "int8":
        assert config == [{"id": "quantize", "mode": "uniform", "bits": 8, "scheme": "symmetric",
                           "granularity": "channel", "axis": 0}, {"id": "huffman"}]
    elif recipe == "int4":
        assert config == [{"id": "quantize", "mode": "uniform", "bits": 4, "scheme": "symmetric",
                           "granularity": "group", "group_size": 64},
                          {"id": "bitpack", "bits": 4}]
    elif recipe == "deep-compression":
        assert config[0] == {"id": "prune", "sparsity": 0.9, "structure": "none",
                             "scope": "tensor"}
        assert config[1]["id"] == "cluster" and config[1]["bits"] == 5
        assert config[1]["keep_zero"] is True
        assert len(config) == 3 and ids[2] in {"huffman", "zerorun", "sparse", "linerice"}
    else:
        assert config[0] == {"id": "quantize", "mode": "step", "granularity": "channel",
                             "axis": 0, "step_ratio": 0.25}
        assert len(config) == 2 and ids[1] in CODERS
    assert "auto" not in ids


@pytest.mark.parametrize("recipe", LOSSY_RECIPES)
def test_lossy_only_where_the_rule_says(recipe, tmp_path_factory):
    path, loaded = saved(recipe, tmp_path_factory)
    with wcodec.open(path) as f:
        assert f.metadata()["wcodec.recipe"] == recipe
        assert set(f.keys()) == set(EXPECTED)
        for name, want in EXPECTED.items():
            info = f.info(name)
            assert info.dtype == KINDS[name] and info.shape == want.shape
            got = loaded[name]
            assert got.dtype == storage_dtype(KINDS[name]) and got.shape == want.shape
            lossy = Pipeline.from_config(info.pipeline).lossy
            assert lossy == (name in LOSSY), name
            if name in LOSSY:
                expected_pipeline_ok(recipe, info.pipeline)
                assert not np.array_equal(got, want), f"{name} unchanged by {recipe}"
            else:  # biases, norms, small matrices, ints: bit-exact, bytegroup
                assert [c["id"] for c in info.pipeline] == ["bytegroup"], name
                assert_bits_equal(got, want, f"{recipe} {name}")
                assert info.stats == {}


def test_int8_error_within_half_a_step_per_channel(tmp_path_factory):
    path, loaded = saved("int8", tmp_path_factory)
    with wcodec.open(path) as f:
        for name in LOSSY:
            dtype = KINDS[name]
            scale = f32(f, name, "0.scale")
            want = rows(values(EXPECTED[name], dtype))
            got = rows(values(loaded[name], dtype))
            assert scale.size == want.shape[0]
            x32 = want.astype(np.float32).astype(np.float64)
            assert np.allclose(scale, np.abs(x32).max(axis=1) / 127, rtol=1e-6)
            allow = scale[:, None] / 2 * (1 + 1e-6) + rounding(dtype) * np.abs(want)
            assert np.all(np.abs(got - want) <= allow), name
            assert f.info(name).stats["levels"] <= 255


def test_int4_is_four_and_a_half_bits_per_weight(tmp_path_factory):
    path, loaded = saved("int4", tmp_path_factory)
    with wcodec.open(path) as f:
        stored = 0
        for name in LOSSY:
            info = f.info(name)
            assert info.numel % 64 == 0
            # 4-bit levels + one float32 scale per 64 weights
            assert info.bits_per_weight == pytest.approx(4.5)
            stored += info.stored_bytes
            dtype = KINDS[name]
            scale = f32(f, name, "0.scale")
            assert scale.size == info.numel // 64
            want = values(EXPECTED[name], dtype).reshape(-1, 64)
            got = values(loaded[name], dtype).reshape(-1, 64)
            allow = scale[:, None] / 2 * (1 + 1e-6) + rounding(dtype) * np.abs(want)
            assert np.all(np.abs(got - want) <= allow), name
            assert np.all(np.array([np.unique(r).size for r in got]) <= 15)
        assert 8 * stored / WEIGHT_NUMEL == pytest.approx(4.5)


def test_deep_compression_sparsity_and_clusters(tmp_path_factory):
    path, loaded = saved("deep-compression", tmp_path_factory)
    with wcodec.open(path) as f:
        total_zero = 0
        for name in LOSSY:
            info = f.info(name)
            dtype = KINDS[name]
            got = values(loaded[name], dtype)
            n = got.size
            zeros = np.count_nonzero(got == 0)
            assert zeros == prune_count(n, 0.9), name
            total_zero += zeros
            assert np.unique(got).size <= 32
            assert info.stats["pruned"] == pytest.approx(prune_count(n, 0.9) / n, rel=1e-5)
            assert info.stats["clusters"] == 32
            # kept weights are the largest magnitudes
            want = values(EXPECTED[name], dtype)
            assert np.abs(want[got == 0]).max() <= np.abs(want[got != 0]).min()
            # the recorded coder is the smallest of the four candidates
            winner = info.pipeline[2]["id"]
            data_len = [s.length for s in info.streams if s.name == "data"][0]
            spec = ArraySpec(want.shape, dtype)
            head = info.pipeline[:2]
            sizes = {c: len(Pipeline(head + [{"id": c}]).encode(EXPECTED[name], spec).data)
                     for c in ("huffman", "zerorun", "sparse", "linerice")}
            assert data_len == sizes[winner] == min(sizes.values())
            assert info.bits_per_weight < 2.0
        assert total_zero / WEIGHT_NUMEL == pytest.approx(0.9, abs=1e-3)


def test_auto_recipe_step_quantization(tmp_path_factory):
    path, loaded = saved("auto", tmp_path_factory)
    int8_path, _ = saved("int8", tmp_path_factory)
    with wcodec.open(path) as f, wcodec.open(int8_path) as f8:
        for name in LOSSY:
            dtype = KINDS[name]
            step = f32(f, name, "0.step")
            want = rows(values(EXPECTED[name], dtype))
            got = rows(values(loaded[name], dtype))
            x32 = want.astype(np.float32).astype(np.float64)
            assert np.allclose(step, 0.25 * x32.std(axis=1), rtol=1e-5)
            allow = step[:, None] / 2 * (1 + 1e-6) + rounding(dtype) * (np.abs(want) + step[:, None])
            assert np.all(np.abs(got - want) <= allow), name
            # much coarser than int8, so much smaller
            assert f.info(name).bits_per_weight < 0.7 * f8.info(name).bits_per_weight


def test_with_options_sparsity_and_bits(tmp_path_factory):
    before = [dict(c) for r in RECIPES["deep-compression"].rules for c in r.pipeline]
    recipe = RECIPES["deep-compression"].with_options(sparsity=0.5, bits=3)
    path, loaded = saved(recipe, tmp_path_factory, key="dc-0.5-3")
    assert [dict(c) for r in RECIPES["deep-compression"].rules for c in r.pipeline] == before
    with wcodec.open(path) as f:
        for name in EXPECTED:
            info = f.info(name)
            if name not in LOSSY:
                assert_bits_equal(loaded[name], EXPECTED[name], name)
                continue
            prune, cluster = info.pipeline[0], info.pipeline[1]
            assert prune["id"] == "prune" and prune["sparsity"] == 0.5
            assert cluster["id"] == "cluster" and cluster["bits"] == 3
            got = values(loaded[name], KINDS[name])
            assert np.count_nonzero(got == 0) == prune_count(got.size, 0.5)
            assert np.unique(got).size <= 8
            assert info.stats["clusters"] == 8
            assert len(bytes(f.read_stream(name, "1.codebook"))) == 8 * 4


def test_with_options_applies_to_every_codec_with_that_option(tmp_path):
    """int4 with bits=3, group_size=32: quantize AND bitpack take bits=3, so
    3 bits + 32/32 bits of scale per weight."""
    recipe = RECIPES["int4"].with_options(bits=3, group_size=32)
    path = str(tmp_path / "int3.wcodec")
    wcodec.save_file(GIVEN, path, recipe=recipe)
    with wcodec.open(path) as f:
        for name in LOSSY:
            info = f.info(name)
            assert info.pipeline[0]["bits"] == 3 and info.pipeline[0]["group_size"] == 32
            assert info.pipeline[1] == {"id": "bitpack", "bits": 3}
            assert info.bits_per_weight == pytest.approx(4.0)
            assert info.stats["levels"] <= 7


@given(dtype=st.sampled_from(["float32", "float16", "bfloat16", "float64", "int8", "int64",
                              "uint16", "bool"]),
       shape=st.sampled_from([(4096,), (64, 64), (63, 65), (4096, 1), (8, 8, 64), (2, 2048),
                              (16, 16), (4095, 1), ()]),
       name=st.sampled_from(["w", "layer.weight", "x.bias", "norm.weight"]),
       recipe=st.sampled_from(LOSSY_RECIPES))
def test_lossy_rule_selection(dtype, shape, name, recipe):
    """Lossy exactly for float tensors with >= 2 dims and >= 4096 elements."""
    pipeline = get_recipe(recipe).pipeline_for(name, ArraySpec(shape, dtype))
    float_ = wcodec.dtypes.get(dtype).is_float
    want = float_ and len(shape) >= 2 and math.prod(shape) >= MIN_LOSSY_SIZE
    assert pipeline.lossy == want
    if not want:
        assert pipeline.describe() == "bytegroup"


# ---------------------------------------------------------------------------
# global pruning
# ---------------------------------------------------------------------------

def global_recipe(sparsity: float, **prune) -> dict:
    return {"name": "global", "extends": "lossless", "rules": [{
        "match": ["*.weight"], "dtypes": ["float"], "min_ndim": 2, "min_size": 4096,
        "pipeline": [{"id": "prune", "sparsity": sparsity, "scope": "global", **prune},
                     {"id": "cluster", "bits": 4},
                     {"id": "auto", "candidates": ["zerorun", "sparse", "huffman"]}]}]}


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8, 0.95])
def test_global_pruning_one_threshold(sparsity, tmp_path):
    path = str(tmp_path / "g.wcodec")
    wcodec.save_file(GIVEN, path, recipe=global_recipe(sparsity))
    loaded = wcodec.load_file(path)
    mags = {n: np.abs(values(EXPECTED[n], KINDS[n]).astype(np.float32)) for n in LOSSY}
    with wcodec.open(path) as f:
        assert f.metadata()["wcodec.recipe"] == "global"
        thresholds = set()
        pruned_total = 0
        per_tensor = {}
        for name in EXPECTED:
            info = f.info(name)
            if name not in LOSSY:
                assert_bits_equal(loaded[name], EXPECTED[name], name)
                continue
            prune = info.pipeline[0]
            # resolved: the threshold actually applied, not the global sparsity
            assert set(prune) == {"id", "threshold", "structure", "scope"}
            assert prune["scope"] == "tensor" and prune["structure"] == "none"
            thresholds.add(prune["threshold"])
            got = values(loaded[name], KINDS[name])
            zero = got == 0
            pruned_total += np.count_nonzero(zero)
            per_tensor[name] = np.count_nonzero(zero) / got.size
            assert info.stats["pruned"] == pytest.approx(per_tensor[name], rel=1e-5)
            t = prune["threshold"]
            assert np.all(mags[name][zero] <= t) and np.all(mags[name][~zero] > t)
    assert len(thresholds) == 1
    (t,) = thresholds
    everything = np.concatenate([m.reshape(-1) for m in mags.values()])
    k = prune_count(everything.size, sparsity)
    ties = np.count_nonzero(everything == t)
    assert k <= pruned_total <= k + ties
    assert pruned_total / WEIGHT_NUMEL == pytest.approx(sparsity, abs=2e-3)
    if k:
        assert t == np.sort(everything)[k - 1]
    if 0 < sparsity < 1:
        # one threshold over tensors of different scales: the small-scale
        # attention matrix loses more than the unit-scale embedding
        assert per_tensor["encoder.layer.0.attn.weight"] > per_tensor["embed.weight"]


def test_global_pruning_only_ranks_selected_tensors(tmp_path):
    """Tensors the rule does not select neither take part in the ranking nor
    change."""
    recipe = global_recipe(0.5)
    recipe["rules"][0]["exclude"] = ["embed.*"]
    path = str(tmp_path / "g.wcodec")
    wcodec.save_file(GIVEN, path, recipe=recipe)
    loaded = wcodec.load_file(path)
    selected = LOSSY - {"embed.weight"}
    assert_bits_equal(loaded["embed.weight"], EXPECTED["embed.weight"], "embed")
    zeros = sum(np.count_nonzero(values(loaded[n], KINDS[n]) == 0) for n in selected)
    n = sum(EXPECTED[m].size for m in selected)
    assert zeros == pytest.approx(prune_count(n, 0.5), abs=50)


def test_global_pruning_is_per_rule(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {"a.weight": (rng.standard_normal((64, 64)) * 0.01).astype(np.float32),
               "b.weight": rng.standard_normal((64, 64)).astype(np.float32)}
    tail = [{"id": "cluster", "bits": 4}, {"id": "zerorun"}]
    recipe = {"rules": [
        {"match": ["a.*"], "pipeline": [{"id": "prune", "sparsity": 0.5, "scope": "global"}] + tail},
        {"match": ["b.*"], "pipeline": [{"id": "prune", "sparsity": 0.5, "scope": "global"}] + tail},
    ]}
    path = str(tmp_path / "rules.wcodec")
    wcodec.save_file(tensors, path, recipe=recipe)
    with wcodec.open(path) as f:
        # each rule selects one tensor, so each is pruned to 50% on its own
        assert f.info("a.weight").stats["pruned"] == pytest.approx(0.5)
        assert f.info("b.weight").stats["pruned"] == pytest.approx(0.5)


def test_global_structured_pruning_is_refused_before_writing(tmp_path):
    """Structured pruning has no global form: refused as a ConfigError while
    the recipe is read, so no file (that could not be read back) is written."""
    path = tmp_path / "gs.wcodec"
    with pytest.raises(wcodec.ConfigError):
        wcodec.save_file(GIVEN, str(path), recipe=global_recipe(0.5, structure="channels"))
    assert not path.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# a TOML recipe: rate allocation with step quantization per name glob
# ---------------------------------------------------------------------------

RATE_TOML = """
name = "rate-allocation"
description = "fine steps for attention, coarse for MLP and conv, one step for the embedding"
extends = "lossless"

[[rules]]
match = ["*.attn.weight"]
dtypes = ["float"]
min_ndim = 2
pipeline = [{ id = "quantize", mode = "step", step_ratio = 0.05 }, { id = "auto" }]

[[rules]]
match = ["*.mlp.weight", "conv.*"]
exclude = ["*.bias"]
dtypes = ["float"]
min_ndim = 2
pipeline = [{ id = "quantize", mode = "step", step_ratio = 0.5 }, { id = "auto" }]

[[rules]]
match = ["embed.*"]
pipeline = [{ id = "quantize", mode = "step", step_ratio = 1.5, granularity = "tensor" },
            { id = "huffman" }]
"""

RATIOS = {"encoder.layer.0.attn.weight": 0.05, "encoder.layer.0.mlp.weight": 0.5,
          "conv.weight": 0.5, "embed.weight": 1.5}


def test_toml_rate_allocation(tmp_path):
    toml = tmp_path / "rate.toml"
    toml.write_text(textwrap.dedent(RATE_TOML), encoding="utf-8")
    path = str(tmp_path / "rate.wcodec")
    wcodec.save_file(GIVEN, path, recipe=str(toml))
    loaded = wcodec.load_file(path)
    bpw = {}
    with wcodec.open(path) as f:
        assert f.metadata()["wcodec.recipe"] == "rate-allocation"
        for name in EXPECTED:
            info = f.info(name)
            if name not in RATIOS:  # head.weight (bf16), biases, norms, ints: lossless
                assert [c["id"] for c in info.pipeline] == ["bytegroup"], name
                assert_bits_equal(loaded[name], EXPECTED[name], name)
                continue
            q = info.pipeline[0]
            assert q["id"] == "quantize" and q["mode"] == "step"
            assert q["step_ratio"] == RATIOS[name]
            assert "auto" not in [c["id"] for c in info.pipeline]
            dtype = KINDS[name]
            want = values(EXPECTED[name], dtype)
            x32 = want.astype(np.float32).astype(np.float64)
            step = f32(f, name, "0.step")
            if name == "embed.weight":
                assert q["granularity"] == "tensor" and info.pipeline[1] == {"id": "huffman"}
                assert step.size == 1
                assert step[0] == pytest.approx(1.5 * x32.std(), rel=1e-5)
                per = np.broadcast_to(step, want.shape)
            else:
                assert step.size == want.shape[0]
                assert np.allclose(step, RATIOS[name] * rows(x32).std(axis=1), rtol=1e-5)
                per = np.broadcast_to(step.reshape((-1,) + (1,) * (want.ndim - 1)), want.shape)
            got = values(loaded[name], dtype)
            allow = per / 2 * (1 + 1e-6) + rounding(dtype) * (np.abs(want) + per)
            assert np.all(np.abs(got - want) <= allow), name
            bpw[name] = info.bits_per_weight
    # the finer the step, the more bits
    assert bpw["encoder.layer.0.attn.weight"] > bpw["encoder.layer.0.mlp.weight"] \
        > bpw["embed.weight"]
    assert bpw["encoder.layer.0.attn.weight"] - bpw["encoder.layer.0.mlp.weight"] \
        == pytest.approx(math.log2(10), abs=0.6)  # 10x finer step ~ log2(10) bits


# ---------------------------------------------------------------------------
# wcodec info --json
# ---------------------------------------------------------------------------

def run_info(path: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "wcodec", "info", *extra, path],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("recipe", ["deep-compression", "auto"])
def test_info_json_shows_lossy_stats(recipe, tmp_path_factory):
    path, _ = saved(recipe, tmp_path_factory)
    proc = run_info(path, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    tensors = {t["name"]: t for t in data["tensors"]}
    assert set(tensors) == set(EXPECTED)
    with wcodec.open(path) as f:
        for name, t in tensors.items():
            stats = t["stats"]
            if name not in LOSSY:
                assert stats == {}
                continue
            raw = f.info(name).stats
            assert "entropy_bits" not in stats
            assert stats["entropy_bpw"] == pytest.approx(raw["entropy_bits"] / t["numel"])
            # the order-0 bound of the coded symbols is below what is stored
            assert 0 < stats["entropy_bpw"] <= t["bits_per_weight"]
            assert t["pipeline"] == f.info(name).pipeline
            assert "auto" not in t["pipeline_text"]
            if recipe == "deep-compression":
                assert {"pruned", "sparsity", "clusters", "levels", "entropy_bpw"} <= set(stats)
                assert stats["pruned"] == pytest.approx(0.9, abs=1e-3)
                assert stats["sparsity"] == pytest.approx(0.9, abs=1e-3)
                assert stats["clusters"] == 32
                assert 2 <= stats["levels"] <= 32
            else:
                assert {"sparsity", "levels", "entropy_bpw"} <= set(stats)
                assert stats["levels"] >= 3
                assert 0 < stats["sparsity"] < 0.5
    totals = data["totals"]
    assert totals["tensors"] == len(EXPECTED)
    assert totals["numel"] == sum(a.size for a in EXPECTED.values())
    if recipe == "deep-compression":
        text = run_info(path)
        assert text.returncode == 0, text.stderr
        header = [line for line in text.stdout.splitlines() if "pipeline" in line][0]
        for column in ("pruned", "sparsity", "clusters", "levels", "entropy_bpw"):
            assert column in header
        assert re.search(r"prune\(sparsity=0\.9\)\+cluster\(bits=5\)\+(huffman|zerorun|sparse)\b",
                         text.stdout)
