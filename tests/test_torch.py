"""The PyTorch layer: wcodec.torch (safetensors.torch verbs)."""
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import wcodec
import wcodec.torch as wt

ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16,
              torch.int64, torch.int32, torch.int16, torch.int8,
              torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.bool]
INT_VIEW = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


def make(dtype, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point:
        t = (torch.randn(shape, generator=g, dtype=torch.float64) * 10).to(dtype)
        flat = t.view(-1)
        specials = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0],
                                dtype=dtype)[: flat.numel()]
        flat[: specials.numel()] = specials
        return t
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -(2 ** 62)), min(info.max, 2 ** 62)
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int64).to(dtype)


def bits(t):
    """The raw bit pattern, so NaN and -0.0 compare exactly."""
    t = t.contiguous()
    if t.dtype == torch.bool:
        return t.to(torch.uint8)
    return t.view(INT_VIEW[t.element_size()])


def assert_bit_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(bits(a), bits(b))


# -- save_file / load_file --------------------------------------------------
@pytest.mark.parametrize("recipe", ["lossless", "raw"])
def test_all_dtypes_bit_exact(tmp_path, recipe):
    tensors = {str(dt).replace("torch.", ""): make(dt, (7, 5), seed=i)
               for i, dt in enumerate(ALL_DTYPES)}
    path = tmp_path / "t.wcodec"
    wt.save_file(tensors, path, recipe=recipe, metadata={"who": "test"})
    loaded = wt.load_file(path)
    assert list(loaded) == list(tensors)
    for name, t in tensors.items():
        assert loaded[name].device.type == "cpu"
        assert_bit_equal(loaded[name], t)
    with wcodec.open(path) as r:
        assert r.info("bfloat16").dtype == "bfloat16"
        assert r.metadata()["who"] == "test"
        assert r.metadata()["wcodec.recipe"] == recipe


def test_bfloat16_every_bit_pattern(tmp_path):
    t = torch.arange(0, 1 << 16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    wt.save_file({"b": t}, tmp_path / "b.wcodec")
    assert_bit_equal(wt.load_file(tmp_path / "b.wcodec")["b"], t)


@pytest.mark.parametrize("recipe,cast", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_lossy_recipes_are_close(tmp_path, recipe, cast):
    g = torch.Generator().manual_seed(1)
    tensors = {"w32": torch.randn(64, 33, generator=g),
               "w64": torch.randn(10, dtype=torch.float64, generator=g),
               "bf": torch.randn(20, generator=g).bfloat16(),
               "idx": torch.arange(12)}
    wt.save_file(tensors, tmp_path / "l.wcodec", recipe=recipe)
    loaded = wt.load_file(tmp_path / "l.wcodec")
    for name in ("w32", "w64"):
        got, want = loaded[name], tensors[name]
        assert got.dtype == want.dtype
        assert torch.equal(got, want.to(cast).to(want.dtype))  # round to nearest, once
        rtol = 2 ** -8 if cast == torch.bfloat16 else 2 ** -11
        torch.testing.assert_close(got, want, rtol=rtol, atol=1e-6)
    assert_bit_equal(loaded["bf"], tensors["bf"])
    assert_bit_equal(loaded["idx"], tensors["idx"])


@pytest.mark.parametrize("recipe", ["fp16", "bf16"])
def test_zero_d_float_with_lossy_recipe(tmp_path, recipe):
    wt.save_file({"s": torch.tensor(1.5), "v": torch.tensor([2.5])}, tmp_path / "s.wcodec",
                 recipe=recipe)
    loaded = wt.load_file(tmp_path / "s.wcodec")
    assert loaded["s"].shape == () and loaded["s"].item() == 1.5
    assert loaded["v"].tolist() == [2.5]


def test_non_contiguous_zero_d_empty_and_grad(tmp_path):
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    tensors = {
        "transposed": base.t(),
        "strided": torch.arange(100.0)[::3],
        "expanded": torch.tensor([1.0, 2.0]).expand(4, 2),
        "scalar": torch.tensor(3.5),
        "scalar_bf16": torch.tensor(-1.25, dtype=torch.bfloat16),
        "scalar_bool": torch.tensor(True),
        "empty": torch.empty(0, 3),
        "empty_int": torch.empty(4, 0, 2, dtype=torch.int8),
        "param": nn.Parameter(torch.ones(3, 2)),
    }
    assert not tensors["transposed"].is_contiguous()
    path = tmp_path / "nc.wcodec"
    wt.save_file(tensors, path)
    assert base.is_contiguous() and torch.equal(base, torch.arange(60.0).reshape(6, 10))
    loaded = wt.load_file(path)
    for name, t in tensors.items():
        assert_bit_equal(loaded[name], t.detach())
        assert loaded[name].is_contiguous() and not loaded[name].requires_grad
    assert loaded["scalar"].shape == () and loaded["scalar"].item() == 3.5
    assert loaded["empty_int"].shape == (4, 0, 2)


def test_load_file_wraps_decoded_array_without_copy(tmp_path, monkeypatch):
    wt.save_file({"a": torch.randn(8, 8), "b": torch.randn(4).bfloat16()}, tmp_path / "z.wcodec")
    decoded = {}
    original = wcodec.Reader.get_tensor

    def spy(self, name, out=None):
        decoded[name] = original(self, name, out=out)
        return decoded[name]

    monkeypatch.setattr(wcodec.Reader, "get_tensor", spy)
    loaded = wt.load_file(tmp_path / "z.wcodec")
    for name, t in loaded.items():
        assert t.data_ptr() == decoded[name].ctypes.data
    assert loaded["b"].dtype == torch.bfloat16


def test_device_argument(tmp_path):
    wt.save_file({"a": torch.ones(2)}, tmp_path / "d.wcodec")
    for device in ("cpu", torch.device("cpu")):
        assert wt.load_file(tmp_path / "d.wcodec", device=device)["a"].device.type == "cpu"
        with wt.open(tmp_path / "d.wcodec", device=device) as f:
            assert f.get_tensor("a").device.type == "cpu"
    with pytest.raises(wcodec.InputError, match="device"):
        wt.load_file(tmp_path / "d.wcodec", device="nonsense")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip(tmp_path):
    t = torch.randn(5, 3, device="cuda").bfloat16()
    wt.save_file({"t": t.t()}, tmp_path / "c.wcodec")
    got = wt.load_file(tmp_path / "c.wcodec", device="cuda")["t"]
    assert got.is_cuda and torch.equal(got, t.t())


def test_shared_tensors_rejected(tmp_path):
    a = torch.randn(4, 4)
    path = tmp_path / "s.wcodec"
    for tensors in ({"a": a, "b": a}, {"a": a, "b": a[1:]}, {"a": a, "b": a.t()},
                    {"a": a, "b": a.view(-1)[5:7]}, {"p": nn.Parameter(a), "q": a}):
        with pytest.raises(wcodec.InputError, match="save_model"):
            wt.save_file(tensors, path)
        assert not path.exists()
    # same storage, disjoint ranges: fine (like safetensors)
    wt.save_file({"top": a[:2], "bottom": a[2:]}, path)
    loaded = wt.load_file(path)
    assert torch.equal(loaded["top"], a[:2]) and torch.equal(loaded["bottom"], a[2:])
    # copies are fine
    wt.save_file({"a": a, "b": a.clone()}, path)


def test_save_file_bad_inputs(tmp_path):
    path = tmp_path / "bad.wcodec"
    with pytest.raises(wcodec.InputError):
        wt.save_file([("a", torch.ones(1))], path)
    with pytest.raises(wcodec.InputError, match="torch.Tensor"):
        wt.save_file({"a": np.ones(2)}, path)
    with pytest.raises(wcodec.InputError, match="sparse"):
        wt.save_file({"a": torch.eye(3).to_sparse()}, path)
    with pytest.raises(wcodec.InputError, match="meta"):
        wt.save_file({"a": torch.empty(3, device="meta")}, path)
    with pytest.raises(wcodec.InputError):
        wt.save_file({"a": torch.ones(2, dtype=torch.complex64)}, path)
    assert not path.exists()


def test_open_lazy(tmp_path):
    tensors = {"x": torch.randn(3, 2), "y": torch.arange(5, dtype=torch.int16)}
    wt.save_file(tensors, tmp_path / "o.wcodec", metadata={"k": "v"})
    with wt.open(tmp_path / "o.wcodec", framework="pt", device="cpu") as f:
        assert f.keys() == ["x", "y"] and "x" in f and len(f) == 2 and list(f) == ["x", "y"]
        assert f.metadata()["k"] == "v"
        assert f.info("y").shape == (5,)
        assert torch.equal(f.get_tensor("y"), tensors["y"])
        assert torch.equal(f.get_tensor("x"), tensors["x"])
        with pytest.raises(wcodec.InputError):
            f.get_tensor("nope")
    with wt.safe_open(tmp_path / "o.wcodec", "pt") as f:
        assert torch.equal(f.get_tensor("x"), tensors["x"])
    with pytest.raises(wcodec.InputError, match="framework"):
        wt.open(tmp_path / "o.wcodec", framework="np")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_round_trip(tmp_path, data):
    n = data.draw(st.integers(1, 4))
    tensors = {}
    for i in range(n):
        dtype = data.draw(st.sampled_from(ALL_DTYPES))
        shape = tuple(data.draw(st.lists(st.integers(0, 6), min_size=0, max_size=4)))
        t = make(dtype, shape, seed=data.draw(st.integers(0, 2 ** 31)))
        if t.dim() >= 2 and data.draw(st.booleans()):
            t = t.transpose(0, -1)
        tensors[f"t{i}"] = t
    recipe = data.draw(st.sampled_from(["lossless", "raw"]))
    path = tmp_path / "h.wcodec"
    wt.save_file(tensors, path, recipe=recipe)
    loaded = wt.load_file(path)
    assert list(loaded) == list(tensors)
    for name, t in tensors.items():
        assert_bit_equal(loaded[name], t)


# -- save_model / load_model ------------------------------------------------
class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.mlp = nn.Sequential(nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
        self.register_buffer("scale", torch.tensor(2.0))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.mlp(x.flatten(1)) * self.scale


class TinyLM(nn.Module):
    def __init__(self, vocab=50, dim=16, tie=True):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.block = nn.Linear(dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tie:
            self.lm_head.weight = self.embed.weight

    def forward(self, ids):
        return self.lm_head(torch.tanh(self.block(self.embed(ids))))


def trained(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.mark.parametrize("threads", [1, 3])
def test_model_round_trip_convnet(tmp_path, threads):
    torch.manual_seed(0)
    src = trained(ConvNet(), seed=1)
    x = torch.randn(2, 3, 4, 4)
    path = tmp_path / "conv.wcodec"
    wt.save_model(src, path, metadata={"arch": "convnet"})
    with wcodec.open(path) as r:
        assert set(r.keys()) == set(src.state_dict())  # buffers in, non-persistent out
        assert "bn.num_batches_tracked" in r.keys() and "scratch" not in r.keys()
        assert wt.ALIASES_KEY not in r.metadata() and r.metadata()["arch"] == "convnet"
    dst = trained(ConvNet(), seed=2)
    params_before = {n: p for n, p in dst.named_parameters()}
    missing, unexpected = wt.load_model(dst, path, threads=threads)
    assert missing == [] and unexpected == []
    for n, p in dst.named_parameters():
        assert p is params_before[n]  # loaded into the existing parameters
    for (n, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert_bit_equal(b, a)
    assert torch.equal(dst(x), src(x))


@pytest.mark.parametrize("threads", [1, 3])
def test_model_tied_weights(tmp_path, threads):
    src = trained(TinyLM(tie=True), seed=3)
    assert src.lm_head.weight is src.embed.weight
    path = tmp_path / "lm.wcodec"
    wt.save_model(src, path)
    with wt.open(path) as f:
        assert "lm_head.weight" not in f.keys() and "embed.weight" in f.keys()
        assert json.loads(f.metadata()[wt.ALIASES_KEY]) == {"lm_head.weight": "embed.weight"}
    ids = torch.tensor([[1, 5, 9, 49]])

    dst = trained(TinyLM(tie=True), seed=4)
    assert wt.load_model(dst, path, threads=threads) == ([], [])
    assert dst.lm_head.weight is dst.embed.weight
    assert torch.equal(dst(ids), src(ids))

    untied = trained(TinyLM(tie=False), seed=5)
    assert wt.load_model(untied, path, threads=threads) == ([], [])
    assert torch.equal(untied.lm_head.weight, src.embed.weight)
    assert torch.equal(untied(ids), src(ids))

    # a file with both names stored (no alias metadata) into a tied model
    wt.save_file({k: v.clone() for k, v in src.state_dict().items()}, tmp_path / "both.wcodec")
    dst2 = trained(TinyLM(tie=True), seed=6)
    assert wt.load_model(dst2, tmp_path / "both.wcodec", threads=threads) == ([], [])
    assert torch.equal(dst2(ids), src(ids))

    # an untied file into a tied model: only the kept name is needed
    only_embed = {k: v for k, v in src.state_dict().items() if k != "lm_head.weight"}
    wt.save_file(only_embed, tmp_path / "embed_only.wcodec")
    dst3 = trained(TinyLM(tie=True), seed=7)
    assert wt.load_model(dst3, tmp_path / "embed_only.wcodec", threads=threads) == ([], [])
    assert torch.equal(dst3(ids), src(ids))


@pytest.mark.parametrize("recipe", ["lossless", "int8"])
def test_tied_names_stored_twice_load_like_load_state_dict(tmp_path, recipe):
    """Both tied names in the file with different values: whatever the number of
    threads, the model ends as load_state_dict leaves it (the later name wins),
    never a mix of the two decodes."""
    src = trained(TinyLM(tie=False), seed=9)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    path = tmp_path / "two.wcodec"
    wt.save_file(state, path, recipe=recipe)
    reference = trained(TinyLM(tie=True), seed=10)
    reference.load_state_dict(wt.load_file(path, threads=1))
    for threads in (1, 2, 4):
        for _ in range(5):
            dst = trained(TinyLM(tie=True), seed=10)
            assert wt.load_model(dst, path, threads=threads) == ([], [])
            assert dst.lm_head.weight is dst.embed.weight
            for a, b in zip(dst.state_dict().values(), reference.state_dict().values()):
                assert torch.equal(a, b)


def test_model_missing_and_unexpected(tmp_path):
    src = trained(ConvNet(), seed=1)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    del state["mlp.2.bias"]
    state["extra.weight"] = torch.ones(2)
    path = tmp_path / "partial.wcodec"
    wt.save_file(state, path)

    reference = trained(ConvNet(), seed=2)
    expected = reference.load_state_dict(state, strict=False)

    dst = trained(ConvNet(), seed=2)
    bias_before = dst.mlp[2].bias.detach().clone()
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*mlp.2.bias") as exc:
        wt.load_model(dst, path, strict=True)
    assert "Unexpected key(s)" in str(exc.value) and "extra.weight" in str(exc.value)

    dst = trained(ConvNet(), seed=2)
    missing, unexpected = wt.load_model(dst, path, strict=False)
    assert missing == expected.missing_keys == ["mlp.2.bias"]
    assert unexpected == expected.unexpected_keys == ["extra.weight"]
    assert torch.equal(dst.mlp[2].bias, bias_before)
    assert torch.equal(dst.mlp[0].weight, src.mlp[0].weight)
    for a, b in zip(dst.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def test_model_shape_mismatch_raises_like_load_state_dict(tmp_path):
    wt.save_model(nn.Linear(4, 3), tmp_path / "lin.wcodec")
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        wt.load_model(nn.Linear(5, 3), tmp_path / "lin.wcodec")


def test_model_dtype_conversion_and_lossy_recipe(tmp_path):
    src = trained(ConvNet(), seed=8)
    x = torch.randn(2, 3, 4, 4)
    wt.save_model(src, tmp_path / "h.wcodec", recipe="fp16")
    dst = trained(ConvNet(), seed=9)
    assert wt.load_model(dst, tmp_path / "h.wcodec") == ([], [])
    assert dst.conv.weight.dtype == torch.float32
    assert torch.equal(dst.conv.weight, src.conv.weight.half().float())
    assert torch.equal(dst.bn.num_batches_tracked, src.bn.num_batches_tracked)
    torch.testing.assert_close(dst(x), src(x), rtol=0.01, atol=0.01)

    lm = trained(TinyLM(), seed=8)
    ids = torch.tensor([[0, 3, 7]])
    wt.save_model(lm, tmp_path / "bf.wcodec", recipe="bf16")
    lm2 = trained(TinyLM(), seed=9)
    assert wt.load_model(lm2, tmp_path / "bf.wcodec") == ([], [])
    assert lm2.lm_head.weight is lm2.embed.weight
    assert torch.equal(lm2.block.weight, lm.block.weight.bfloat16().float())
    torch.testing.assert_close(lm2(ids), lm(ids), rtol=0.05, atol=0.1)

    # float32 file into a half model: copied with conversion, like load_state_dict
    wt.save_model(src, tmp_path / "f32.wcodec")
    half = trained(ConvNet(), seed=9).half()
    wt.load_model(half, tmp_path / "f32.wcodec")
    assert torch.equal(half.mlp[0].weight, src.mlp[0].weight.half())


class LegacyRename(nn.Module):
    """A module with a custom loader that maps an old key name to a new one."""

    def __init__(self):
        super().__init__()
        self.new = nn.Parameter(torch.zeros(3))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "old" in state_dict:
            state_dict[prefix + "new"] = state_dict.pop(prefix + "old") * 2
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def test_model_custom_loader_hook(tmp_path):
    wt.save_file({"m.old": torch.tensor([1.0, 2.0, 3.0])}, tmp_path / "legacy.wcodec")
    model = nn.Module()
    model.m = LegacyRename()
    assert wt.load_model(model, tmp_path / "legacy.wcodec") == ([], [])
    assert torch.equal(model.m.new.detach(), torch.tensor([2.0, 4.0, 6.0]))


def test_model_device_and_bad_inputs(tmp_path):
    src = trained(TinyLM(), seed=1)
    wt.save_model(src, tmp_path / "m.wcodec")
    dst = trained(TinyLM(), seed=2)
    wt.load_model(dst, tmp_path / "m.wcodec", device="cpu")
    assert torch.equal(dst.block.weight, src.block.weight)
    with pytest.raises(wcodec.InputError):
        wt.save_model({"a": torch.ones(1)}, tmp_path / "x.wcodec")
    with pytest.raises(wcodec.InputError):
        wt.load_model({"a": torch.ones(1)}, tmp_path / "m.wcodec")

    class WithExtra(nn.Linear):
        def get_extra_state(self):
            return {"step": 3}

        def set_extra_state(self, state):
            pass

    with pytest.raises(wcodec.InputError, match="extra state"):
        wt.save_model(WithExtra(2, 2), tmp_path / "x.wcodec")
    assert not os.path.exists(tmp_path / "x.wcodec")


def test_load_file_of_saved_model_has_no_aliases(tmp_path):
    src = trained(TinyLM(), seed=1)
    wt.save_model(src, tmp_path / "m.wcodec", metadata={wt.ALIASES_KEY: "stale", "a": "b"})
    loaded = wt.load_file(tmp_path / "m.wcodec")
    assert set(loaded) == {"embed.weight", "block.weight", "block.bias"}
    with wt.open(tmp_path / "m.wcodec") as f:
        assert json.loads(f.metadata()[wt.ALIASES_KEY]) == {"lm_head.weight": "embed.weight"}
        assert f.metadata()["a"] == "b"


def test_rest_of_wcodec_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, wcodec; wcodec.save_file; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(
                             os.path.abspath(wcodec.__file__)))})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
