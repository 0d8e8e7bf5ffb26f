"""wcodec.finetune: masked training, shared-weight training, the Weightless loop."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import wcodec  # noqa: E402
from conftest import fresh_dir  # noqa: E402
from wcodec import ConfigError, InputError, Pipeline  # noqa: E402
from wcodec import finetune as ft  # noqa: E402
from wcodec.codecs import ArraySpec  # noqa: E402


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 1))


def data(seed=1, n=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.sin(x[:, :1] * 2) + 0.5 * x[:, 1:2] * x[:, 2:3]
    return x, y


def train(model, opt, steps, x, y):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def roundtrip(pipeline, w):
    p = Pipeline(pipeline)
    spec = ArraySpec(w.shape, "float32")
    enc = p.encode(w, spec)
    return p.decode(enc.data, enc.streams, spec)


# ---------------------------------------------------------------------------
# masked training


def test_prune_model_matches_the_codec():
    model = mlp()
    masks = ft.prune_model(model, 0.75)
    assert set(masks) == {"0.weight", "2.weight", "4.weight"}  # >= 2-D parameters
    for name, p in model.named_parameters():
        if name in masks:
            m = masks[name]
            assert m.dtype == torch.bool and m.shape == p.shape
            assert int((~m).sum()) == int(0.75 * p.numel())
            w = p.detach().numpy()
            pruned = roundtrip([{"id": "prune", "sparsity": 0.75}, {"id": "raw"}], w)
            assert np.array_equal(pruned != 0, m.numpy())
    g = ft.prune_model(model, 0.5, layers="*.weight", scope="global")
    total = sum(m.numel() for m in g.values())
    assert sum(int((~m).sum()) for m in g.values()) == total // 2
    assert set(ft.prune_model(model, 0.5, layers=["2.*"])) == {"2.weight", "2.bias"}
    with pytest.raises(ConfigError):
        ft.prune_model(model, 0.5, layers="nothing*")
    with pytest.raises(ConfigError):
        ft.prune_model(model, 0.5, scope="layer")


def test_masked_weights_stay_zero_through_adam():
    x, y = data()
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, opt, 5, x, y)  # Adam now has momentum for every weight
    masks = ft.prune_model(model, 0.8)
    with ft.MaskedTraining(model, masks, optimizer=opt) as masked:
        assert masked.sparsity() == pytest.approx(0.8, abs=0.01)
        losses = train(model, opt, 15, x, y)
        params = dict(model.named_parameters())
        for name, m in masks.items():
            assert torch.all(params[name][~m] == 0), name
            assert torch.all(params[name].grad[~m] == 0), name
            assert torch.any(params[name][m] != 0)
    assert losses[-1] < losses[0]
    # the re-encoded model keeps exactly these zeros
    for name, m in masks.items():
        w = params[name].detach().numpy()
        assert np.array_equal(roundtrip([{"id": "prune", "sparsity": 0.8}, {"id": "raw"}], w), w)


def test_gradient_hooks_alone_are_not_enough_with_adam():
    """Without enforce(), stale Adam moments move pruned weights: the helper's
    optimizer hook is what keeps them at zero."""
    x, y = data()
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, opt, 5, x, y)
    masks = ft.prune_model(model, 0.8)
    masked = ft.apply_masks(model, masks)  # no optimizer: gradient hooks only
    train(model, opt, 3, x, y)
    w = dict(model.named_parameters())["2.weight"]
    assert torch.any(w[~masks["2.weight"]] != 0)  # resurrected by momentum
    masked.enforce()
    assert torch.all(w[~masks["2.weight"]] == 0)
    masked.remove()


def test_masked_training_validates():
    model = mlp()
    with pytest.raises(ConfigError):
        ft.MaskedTraining(model, {"nope": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(InputError):
        ft.MaskedTraining(model, {"0.weight": torch.ones(8, 32, dtype=torch.bool)})
    with pytest.raises(InputError):
        ft.MaskedTraining(model, {"0.weight": torch.ones(32, 8)})
    m = ft.MaskedTraining(model, {"0.weight": np.zeros((32, 8), bool)})  # numpy masks work
    assert torch.all(model[0].weight == 0)
    m.remove()


# ---------------------------------------------------------------------------
# shared-weight training


def test_shared_weights_gradient_is_summed_per_centroid():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    dense = nn.Linear(6, 4)
    idx = torch.randint(0, 4, (4, 6))
    cb = torch.tensor([0.0, -0.5, 0.25, 1.0])
    with torch.no_grad():
        dense.weight.copy_(cb[idx])
        dense.bias.copy_(layer.bias)
    shared = ft.SharedWeights(layer, idx, cb, freeze_zero=False)
    assert "weight" not in dict(layer.named_parameters())
    x = torch.randn(5, 6)
    layer(x).pow(2).sum().backward()
    dense(x).pow(2).sum().backward()
    want = torch.zeros(4).index_add_(0, idx.reshape(-1), dense.weight.grad.reshape(-1))
    assert torch.allclose(shared.codebook.grad, want, atol=1e-6)
    w = shared.remove()
    assert isinstance(w, nn.Parameter) and torch.equal(layer.weight, cb[idx])
    assert set(dict(layer.named_parameters())) == {"weight", "bias"}


def test_codebook_gradient_is_reproducible_on_several_threads():
    """The sum per centroid must not depend on thread scheduling (plain
    ``codebook[idx]`` indexing gives bit-different gradients run to run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, 16, (300, 1000), generator=g)
        upstream = torch.randn(300, 1000, generator=g)

        def gradient():
            cb = torch.linspace(-1, 1, 16, requires_grad=True)
            (ft.lookup(cb, idx) * upstream).sum().backward()
            return cb.grad

        first = gradient()
        assert all(torch.equal(first, gradient()) for _ in range(20))
        assert torch.equal(ft.lookup(torch.arange(16.0), idx), torch.arange(16.0)[idx])
    finally:
        torch.set_num_threads(threads)


def test_shared_training_keeps_clusters_and_learns():
    x, y = data()
    model = mlp()
    masks = ft.prune_model(model, 0.5)
    ft.MaskedTraining(model, masks).remove()  # zero the pruned weights once
    bits = 2
    shared = ft.cluster_model(model, bits)
    assert set(shared) == {"0.weight", "2.weight", "4.weight"}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = train(model, opt, 40, x, y)
    assert losses[-1] < losses[0]
    for name, s in shared.items():
        w = s.export()
        assert torch.unique(w).numel() <= 2 ** bits
        assert s.codebook.detach()[0].item() == 0.0
        assert torch.equal(w == 0, ~masks[name])  # pruned weights stay pruned
    ft.remove_shared(shared)
    params = dict(model.named_parameters())
    assert all(isinstance(params[n], nn.Parameter) for n in shared)
    # the same recipe re-encodes the fine-tuned weights without loss
    for name in shared:
        w = params[name].detach().numpy()
        assert np.unique(w).size <= 2 ** bits
        out = roundtrip([{"id": "prune", "sparsity": 0.5}, {"id": "cluster", "bits": bits},
                         {"id": "bloomier", "mode": "exact"}], w)
        assert np.array_equal(out, w)


def test_cluster_model_validates():
    with pytest.raises(ConfigError):
        ft.cluster_model(mlp(), 9)
    with pytest.raises(ConfigError):
        ft.SharedWeights(nn.Linear(2, 2), torch.zeros(2, 2), torch.zeros(2), name="nope")
    with pytest.raises(InputError):
        ft.SharedWeights(nn.Linear(2, 2), torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(InputError):
        ft.SharedWeights(nn.Linear(2, 2), torch.full((2, 2), 5), torch.zeros(2))


# ---------------------------------------------------------------------------
# Weightless


def test_encode_layer_lossy():
    torch.manual_seed(3)
    w = torch.randn(64, 96) * 0.05
    out, stats = ft.encode_layer_lossy(w, bits=4, sparsity=0.9, max_fp_rate=0.1,
                                       return_stats=True)
    assert isinstance(out, torch.Tensor) and out.dtype == w.dtype and out.shape == w.shape
    ref = roundtrip([{"id": "prune", "sparsity": 0.9}, {"id": "cluster", "bits": 4},
                     {"id": "raw"}], w.numpy())
    kept = ref != 0
    o = out.numpy()
    assert np.array_equal(o[kept], ref[kept])  # every kept weight decodes exactly
    fps = int(np.count_nonzero(o[~kept]))
    assert stats["false_positives"] == fps > 0
    assert stats["value_bits"] == 8  # smallest t with 15 / 2^t <= 0.1
    assert stats["fp_rel_error"] > 0 and stats["rel_error"] >= stats["fp_rel_error"]
    assert stats["bytes"] > 0
    a = ft.encode_layer_lossy(w.numpy(), bits=4, sparsity=0.9, max_fp_rate=0.1)
    assert isinstance(a, np.ndarray) and np.array_equal(a, o)  # deterministic


def test_weightless_loop_freezes_and_saves_exactly():
    x, y = data()
    model = mlp()
    wl = ft.Weightless(model, bits=3, sparsity=0.7, layers="*.weight", max_fp_rate=0.25)
    assert wl.layers == ["2.weight", "0.weight", "4.weight"]  # largest first
    params = dict(model.named_parameters())
    first = wl.layers[0]
    stats = wl.encode(first)
    assert stats["false_positives"] >= 0 and params[first].requires_grad is False
    frozen = params[first].detach().clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = params["0.weight"].detach().clone()
    losses = train(model, opt, 10, x, y)
    assert losses[-1] < losses[0]
    assert torch.equal(params[first], frozen)          # the frozen layer did not move
    assert not torch.equal(params["0.weight"], before)  # the others trained
    with pytest.raises(ConfigError):
        wl.encode(first)
    for name in wl.pending:
        wl.encode(name)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        train(model, opt, 3, x, y)
    assert wl.pending == []
    with fresh_dir() as d:
        path = os.path.join(d, "wl.wcodec")
        wcodec.save_file(wl.state_dict(), path, recipe=wl.recipe())
        loaded = wcodec.load_file(path)
        with wcodec.open(path) as f:
            coders = {i.name: i.pipeline[-1]["id"] for i in f.infos()}
    for name, p in model.state_dict().items():
        assert np.array_equal(loaded[name], p.numpy()), name  # exactly what was trained
        assert coders[name] == ("bloomier" if name in wl.layers else "bytegroup")


def test_freeze():
    model = mlp()
    ft.freeze(model[0])
    assert not model[0].weight.requires_grad and not model[0].bias.requires_grad
    assert model[2].weight.requires_grad
    ft.freeze(model[2].weight)
    assert not model[2].weight.requires_grad and model[2].bias.requires_grad


def test_shared_weights_survive_deepcopy():
    import copy
    model = mlp()
    ft.cluster_model(model, 2, layers="0.weight")
    clone = copy.deepcopy(model)
    cb = clone[0].parametrizations.weight.original
    with torch.no_grad():
        cb[1:] += 1.0
    x = torch.randn(3, 8)
    assert not torch.equal(clone(x), model(x))
    idx = clone[0].parametrizations.weight[0].indices
    assert torch.equal(clone[0].weight, torch.cat([cb.new_zeros(1), cb[1:]])[idx])


class _ConvNet(nn.Module):
    """conv(3) -> pool -> conv(4) -> flatten (4 x 2 x 2) -> fc 6 -> relu -> fc 2."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 3, 3), nn.Conv2d(3, 4, 3)
        self.fc1, self.fc2 = nn.Linear(16, 6), nn.Linear(6, 2)

    def forward(self, x):
        x = torch.relu(nn.functional.max_pool2d(self.conv1(x), 2))   # 10x10 -> 8x8 -> 4x4
        x = self.conv2(x)                                             # -> 2x2
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def test_remove_dead_units_is_exact_and_cascades():
    torch.manual_seed(0)
    net = _ConvNet()
    chain = ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    with torch.no_grad():
        net.fc2.weight[:, 4] = 0            # fc1 unit 4: nothing reads it
        net.fc1.weight[:, 4:8] = 0          # conv2 channel 1 (flattened inputs 4..7) unread
        net.fc1.weight[:, 12:16] = 0        # conv2 channel 3 unread
        net.conv2.weight[[0, 2], 2] = 0     # conv1 channel 2 read only by conv2 channels 1, 3,
                                            # which die above: a cascade
    x = torch.randn(5, 1, 10, 10)
    before = net(x)
    removed = ft.remove_dead_units(net, chain)
    assert removed == {"conv1.weight": 1, "conv2.weight": 2, "fc1.weight": 1}
    assert torch.equal(net(x), before)      # bit-for-bit the same outputs
    assert not net.fc1.weight[4].any() and net.fc1.bias[4] == 0
    assert not net.conv2.weight[[1, 3]].any() and not net.conv2.bias[[1, 3]].any()
    assert not net.conv1.weight[2].any()
    assert net.conv1.weight[[0, 1]].all() and net.fc2.weight.ne(0).sum() == 10
    assert ft.remove_dead_units(net, chain) == dict.fromkeys(chain[:-1], 0)   # idempotent


def test_remove_dead_units_validates():
    net = _ConvNet()
    with pytest.raises(ConfigError, match="no parameter named"):
        ft.remove_dead_units(net, ["conv1.weight", "nope.weight"])
    with pytest.raises(ConfigError, match="at least two"):
        ft.remove_dead_units(net, ["fc1.weight"])
    with pytest.raises(ConfigError, match="cannot read"):
        ft.remove_dead_units(net, ["fc1.weight", "conv1.weight"])   # 1 input channel, 6 units
    with pytest.raises(ConfigError, match="cannot read"):
        ft.remove_dead_units(net, ["fc1.weight", "fc1.bias"])


CONV_CHAIN = ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]


def test_unit_norms_and_group_lasso_match_their_definition():
    torch.manual_seed(1)
    net = _ConvNet()
    norms = ft.unit_norms(net, CONV_CHAIN, inputs=True)
    assert sorted(norms) == ["conv1.weight", "conv1.weight:inputs", "conv2.weight", "fc1.weight"]
    # conv2 channel 1: its kernel, its bias, and fc1's flattened inputs 4..7
    manual = torch.cat([net.conv2.weight[1].flatten(), net.conv2.bias[1:2],
                        net.fc1.weight[:, 4:8].flatten()]).norm()
    assert torch.allclose(norms["conv2.weight"][1], manual)
    manual = torch.cat([net.fc1.weight[5], net.fc1.bias[5:6], net.fc2.weight[:, 5]]).norm()
    assert torch.allclose(norms["fc1.weight"][5], manual)
    assert torch.allclose(norms["conv1.weight:inputs"], net.conv1.weight.norm().reshape(1))
    sizes = {"conv1.weight": 9 + 1 + 4 * 9, "conv2.weight": 27 + 1 + 6 * 4,
             "fc1.weight": 16 + 1 + 2, "conv1.weight:inputs": 27}
    penalty = ft.group_lasso(net, CONV_CHAIN, inputs=True)
    expected = sum(np.sqrt(sizes[k]) * v.sum() for k, v in norms.items())
    assert torch.allclose(penalty, expected)
    penalty.backward()                       # differentiable: every chained weight gets a gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in net.named_parameters() if n != "fc2.bias")
    assert float(ft.group_lasso(net, CONV_CHAIN).detach()) < float(penalty.detach())  # + inputs


def test_group_lasso_drives_units_to_zero():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    chain = ["0.weight", "2.weight"]
    x = torch.randn(64, 8)
    y = x[:, :2].sum(1, keepdim=True).repeat(1, 2)       # only 2 of 8 inputs matter
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(400):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), y) + 3e-3 * ft.group_lasso(net, chain, inputs=True)
        loss.backward()
        opt.step()
    pixels = ft.unit_norms(net, chain, inputs=True)["0.weight:inputs"]
    assert pixels[:2].min() > 10 * pixels[2:].max()       # the useless inputs die first


def test_unit_masks_remove_the_weakest_units_and_nothing_else():
    torch.manual_seed(3)
    net = _ConvNet()
    with torch.no_grad():
        net.conv2.weight[2] *= 1e-3
        net.fc1.weight[:, 8:12] *= 1e-3
        net.conv2.bias[2] = 0                # conv2 channel 2: the weakest group
        net.fc1.weight[3] *= 1e-3
        net.fc2.weight[:, 3] *= 1e-3         # fc1 unit 3: the weakest
    masks = ft.unit_masks(net, CONV_CHAIN, {"conv2.weight": 0.75, "fc1.weight": 5 / 6})
    assert sorted(masks) == ["conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight", "fc2.weight"]
    assert not masks["conv2.weight"][2].any() and masks["conv2.weight"][[0, 1, 3]].all()
    assert not masks["conv2.bias"][2] and int(masks["conv2.bias"].sum()) == 3
    assert not masks["fc1.weight"][:, 8:12].any() and not masks["fc1.weight"][3].any()
    assert int(masks["fc1.weight"].sum()) == 5 * 12 and not masks["fc1.bias"][3]
    assert not masks["fc2.weight"][:, 3].any() and int(masks["fc2.weight"].sum()) == 10
    # applying them zeroes exactly those groups; the norms of the rest are untouched
    before = ft.unit_norms(net, CONV_CHAIN)
    with ft.MaskedTraining(net, masks):
        after = ft.unit_norms(net, CONV_CHAIN)
    assert after["conv2.weight"][2] == 0 and after["fc1.weight"][3] == 0
    keep = [0, 1, 3]
    assert torch.allclose(after["conv2.weight"][keep], before["conv2.weight"][keep])
    assert ft.unit_masks(net, CONV_CHAIN, {"fc1.weight": 1.0}) == {}
    # input features: 1 input channel, keep 0 of it removes the whole first layer
    inputs = ft.unit_masks(net, CONV_CHAIN, {"conv1.weight:inputs": 0.0})
    assert list(inputs) == ["conv1.weight"] and not inputs["conv1.weight"].any()


def test_unit_masks_validate():
    net = _ConvNet()
    with pytest.raises(ConfigError, match="not a weight of the chain"):
        ft.unit_masks(net, CONV_CHAIN, {"fc2.weight": 0.5})     # the last layer has no reader
    with pytest.raises(ConfigError, match="not a weight of the chain"):
        ft.unit_masks(net, CONV_CHAIN, {"fc1.weight:inputs": 0.5})
    for bad in (1.5, -0.1, True, "half", float("nan")):
        with pytest.raises(ConfigError, match="fraction"):
            ft.unit_masks(net, CONV_CHAIN, {"fc1.weight": bad})
    with pytest.raises(ConfigError, match="at least two"):
        ft.group_lasso(net, ["fc1.weight"])
    with pytest.raises(InputError):
        ft.unit_norms("not a model", CONV_CHAIN)
