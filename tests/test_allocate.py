"""wcodec.allocate: sensitivity-driven step allocation for post-training quantization."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import wcodec
import wcodec.torch as wtorch
from wcodec import allocate
from wcodec.errors import ConfigError, WcodecError


class TwoBranch(nn.Module):
    """y = a(x) + 10 * b(x) with weights of equal spread: the same relative
    step costs ``b`` about 100x the output distortion."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Linear(64, 96, bias=False)
        self.b = nn.Linear(64, 96, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.randn(96, 64, generator=g))
            self.b.weight.copy_(torch.randn(96, 64, generator=g))

    def forward(self, x):
        return self.a(x) + 10 * self.b(x)


def _inputs():
    return torch.randn(256, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_sensitive_tensor_gets_the_finer_step_and_budget_is_kept(tmp_path, granularity):
    model, x = TwoBranch(), _inputs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sens = allocate.measure_sensitivity(model, lambda m: m(x), granularity=granularity)
    assert set(sens) == {"a.weight", "b.weight"}
    for k, v in model.state_dict().items():           # every probe was undone
        assert torch.equal(v, before[k])
    assert 50 < sens["b.weight"].a / sens["a.weight"].a < 200
    budget = 1e-3
    ratios = allocate.allocate(sens, budget)
    assert 7 < ratios["a.weight"] / ratios["b.weight"] < 14
    # equal split: each tensor gets budget * n_t / N of the distortion
    for name, s in sens.items():
        assert s.a * ratios[name] ** 2 == pytest.approx(budget / 2, rel=1e-9)

    path = tmp_path / "m.wcodec"
    wtorch.save_model(model, path, recipe=allocate.step_recipe(ratios, granularity=granularity))
    ref = model(x).detach()
    loaded = TwoBranch()
    wtorch.load_model(loaded, path)
    measured = allocate.output_distortion(ref, loaded(x))
    assert budget / 2 < measured < 2 * budget
    with wcodec.open(path) as f:
        for name, r in ratios.items():
            q = f.info(name).pipeline[0]
            assert q["id"] == "quantize" and q["step_ratio"] == pytest.approx(r)
            assert q["granularity"] == granularity


def test_recipe_matches_names_with_glob_characters_literally(tmp_path):
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    tensors = {"layer[0].w": w, "layer0.w": w.copy(), "x*": w.copy()}
    recipe = allocate.step_recipe({"layer[0].w": 0.5, "x*": 1.0})
    path = tmp_path / "g.wcodec"
    wcodec.save_file(tensors, path, recipe=recipe)
    with wcodec.open(path) as f:
        assert f.info("layer[0].w").pipeline[0]["step_ratio"] == 0.5
        assert f.info("x*").pipeline[0]["step_ratio"] == 1.0
        assert f.info("layer0.w").pipeline[0]["id"] != "quantize"     # not caught by [0]
        np.testing.assert_array_equal(f.get_tensor("layer0.w"), w)
        err = np.abs(f.get_tensor("layer[0].w") - w)
        assert err.max() <= 0.5 * 0.5 * w.std() * (1 + 1e-6)     # one step for the tensor


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**7), st.floats(1e-9, 1e3), st.floats(0.01, 1.0)),
                min_size=1, max_size=20),
       st.floats(1e-6, 1.0))
def test_allocate_properties(items, budget):
    sens = {f"t{i}": allocate.Sensitivity(n, p, a * p * p) for i, (n, a, p) in enumerate(items)}
    ratios = allocate.allocate(sens, budget, min_ratio=1e-4, max_ratio=4.0)
    total = sum(n for n, _, _ in items)
    for name, s in sens.items():
        r = ratios[name]
        assert 1e-4 <= r <= 4.0
        ideal = math.sqrt(budget * s.size / (total * s.a))
        if 1e-4 < ideal < 4.0:
            assert r == pytest.approx(ideal, rel=1e-9)


def test_zero_sensitivity_gets_the_largest_step():
    sens = {"unused": allocate.Sensitivity(4096, 0.3, 0.0),
            "used": allocate.Sensitivity(4096, 0.3, 0.01)}
    ratios = allocate.allocate(sens, 0.01, max_ratio=1.5)
    assert ratios["unused"] == 1.5 and ratios["used"] < 1.5


def test_bad_arguments_raise_wcodec_errors():
    model, x = TwoBranch(), _inputs()
    with pytest.raises(ConfigError, match="no parameter named 'nope'"):
        allocate.measure_sensitivity(model, lambda m: m(x), ["nope"])
    with pytest.raises(ConfigError, match="probe_ratio"):
        allocate.measure_sensitivity(model, lambda m: m(x), probe_ratio=0)
    with pytest.raises(ConfigError, match="granularity"):
        allocate.measure_sensitivity(model, lambda m: m(x), granularity="row")
    with pytest.raises(ConfigError, match="granularity"):
        allocate.step_recipe({"a": 0.5}, granularity="group")
    sens = {"a": allocate.Sensitivity(10, 0.3, 0.1)}
    for budget in (0, -1, float("nan"), float("inf"), "1"):
        with pytest.raises(ConfigError, match="budget"):
            allocate.allocate(sens, budget)
    with pytest.raises(ConfigError, match="min_ratio"):
        allocate.allocate(sens, 0.1, min_ratio=2.0, max_ratio=1.0)
    with pytest.raises(WcodecError, match="shape"):
        allocate.output_distortion(torch.zeros(2, 3), torch.zeros(3, 2))


def test_bfloat16_parameters_are_probed():
    model, x = TwoBranch().to(torch.bfloat16), _inputs().to(torch.bfloat16)
    sens = allocate.measure_sensitivity(model, lambda m: m(x))
    assert all(s.distortion > 0 for s in sens.values())
    assert model.a.weight.dtype == torch.bfloat16
