"""Fast smoke test of the benchmark pieces that need no dataset or model
weights: idx parsing, the summary row schema, the GGUF size formula and
quantizers, the sentence splitter and the distillation loss."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import fmnist, report, sentences  # noqa: E402


@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip(tmp_path, compress):
    images = (np.arange(3 * 4 * 5) % 256).astype(np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 0, 9], np.uint8)
    for arr, name in ((images, "img"), (labels, "lbl")):
        path = str(tmp_path / name)
        fmnist.write_idx(arr, path, compress=compress)
        with open(path, "rb") as f:
            back = fmnist.parse_idx(f.read())
        assert back.shape == arr.shape and back.dtype == arr.dtype
        assert np.array_equal(back, arr)


def test_idx_handwritten_and_errors():
    # magic 0x00000803: uint8, 3 dims (1, 2, 2)
    blob = bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4])
    assert fmnist.parse_idx(blob).tolist() == [[[1, 2], [3, 4]]]
    # int32 big-endian, 1 dim
    blob = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + (258).to_bytes(4, "big") + (1).to_bytes(4, "big")
    assert fmnist.parse_idx(blob).tolist() == [258, 1]
    with pytest.raises(ValueError):
        fmnist.parse_idx(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError):
        fmnist.parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))  # truncated data


def test_fmnist_dir_layout(tmp_path):
    rng = np.random.default_rng(0)
    for key, stem in fmnist.FILES.items():
        n = fmnist.N_VAL + 10 if key.startswith("train") else 7
        arr = (rng.integers(0, 256, (n, 28, 28)) if "images" in key else rng.integers(0, 10, n))
        fmnist.write_idx(arr.astype(np.uint8), str(tmp_path / (stem + ".gz")), compress=True)
    assert fmnist.find_dir(str(tmp_path)) == str(tmp_path)
    d = fmnist.load(str(tmp_path))
    assert d["x_train"].shape == (10, 1, 28, 28) and d["x_val"].shape == (fmnist.N_VAL, 1, 28, 28)
    assert d["x_test"].dtype == np.float32 and d["x_test"].max() <= 1.0
    assert d["y_test"].dtype == np.int64


def _row(**over):
    row = report.make_row("lenet300-fmnist", "int8", False, 100, 1000, "top1", 0.9, 0.91,
                          0.01, 0.2)
    row.update(over)
    return row


def test_row_schema():
    row = _row()
    assert row["ratio"] == 10.0
    report.check_row(row)
    report.check_row(_row(decode_s=None, encode_s=None))  # formula baselines
    for bad in ({"case": "resnet"}, {"metric": "top5"}, {"size_bytes": 100.5},
                {"finetuned": 1}, {"ratio": 3.0}, {"value": float("nan")},
                {"decode_s": "fast"}):
        with pytest.raises(ValueError):
            report.check_row(_row(**bad))
    broken = _row()
    del broken["encode_s"]
    with pytest.raises(ValueError):
        report.check_row(broken)


def test_gguf_size_formula():
    shapes = {"w": (64, 32), "odd": (3, 11), "b": (64,), "conv": (6, 1, 5, 5)}
    # 2048 -> 64 blocks; 33 -> 2 blocks; 150 -> 5 blocks; bias fp32
    assert report.gguf_bytes(shapes, "q8_0") == (64 + 2 + 5) * 34 + 64 * 4
    assert report.gguf_bytes(shapes, "q4_0") == (64 + 2 + 5) * 18 + 64 * 4
    # MiniLM-like: 34 / 32 bytes per weight = 8.5 bits
    assert report.gguf_bytes({"m": (384, 1536)}, "q8_0") * 8 / (384 * 1536) == 8.5


def test_gguf_quantizers():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    for kind, tol in (("q8_0", 1 / 127), ("q4_0", 1 / 7)):
        d = report.gguf_quantize(w, kind)
        assert d.shape == w.shape and d.dtype == np.float32
        blocks = np.abs(w).reshape(-1, 32).max(1, keepdims=True)
        assert (np.abs(d - w).reshape(-1, 32) <= blocks * tol * 1.01).all()
    assert len(np.unique(report.gguf_quantize(w, "q4_0")[0, :32])) <= 16
    state = report.gguf_state({"w": w, "b": w[0]}, "q8_0")
    assert np.array_equal(state["b"], w[0])


def test_sentence_splitter():
    text = ("The quick brown fox jumps over the lazy dog. It was, e.g. on Monday, not "
            "a problem at all! Was it?\n\n    >>> code_line = 1\n    indented code here\n\n"
            "Another paragraph that spans\ntwo lines and ends here.")
    got = sentences.split_sentences(text)
    assert got == ["The quick brown fox jumps over the lazy dog.",
                   "It was, e.g. on Monday, not a problem at all!", "Was it?",
                   "Another paragraph that spans two lines and ends here."]
    assert sentences.is_prose("The quick brown fox jumps over the lazy dog.")
    assert not sentences.is_prose("Was it?")  # too short
    assert not sentences.is_prose("Call foo() with x == 3 to get the value back now.")
    assert not sentences.is_prose("lowercase start is not a sentence we keep here.")
    pool = ["Sentence number %d is here and fine." % i for i in range(50)]
    assert sentences.select(pool, 10) == sentences.select(list(reversed(pool)), 10)


def test_minilm_metrics():
    torch = pytest.importorskip("torch")  # noqa: F841
    from bench import minilm_fidelity as mf

    rng = np.random.default_rng(2)
    ref = rng.standard_normal((40, 8)).astype(np.float32)
    assert mf.cos_mean(ref, ref) == pytest.approx(1.0)
    assert mf.topk_agree(ref, ref * 3.0, 10) == 1.0
    noisy = ref + 10 * rng.standard_normal(ref.shape).astype(np.float32)
    assert mf.topk_agree(ref, noisy, 10) < 1.0
    assert mf.neighbours(ref, 5).shape == (40, 5)
    assert not (mf.neighbours(ref, 5) == np.arange(40)[:, None]).any()


def test_tokenizer_available_or_skip():
    pytest.importorskip("tokenizers")
    from bench import minilm

    try:
        minilm.model_dir()
    except SystemExit:
        pytest.skip("all-MiniLM-L6-v2 weights not installed")
    from bench import minilm_fidelity as mf

    ids, mask = mf.tokenize(["Hello world.", "A longer sentence with more tokens in it."], 128)
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[0].sum() < mask[1].sum()
    # data-free probes: [CLS] word pieces [SEP], no special or [unused] entries, fixed seed
    pids, pmask = mf.random_token_probes(n=16, length=12, seed=3)
    assert tuple(pids.shape) == (16, 12) and bool(pmask.all())
    tok = mf._tokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    assert (pids[:, 0] == cls).all() and (pids[:, -1] == sep).all()
    inner = {tok.id_to_token(int(i)) for i in pids[:, 1:-1].flatten()}
    assert not any(t.startswith("[") and t.endswith("]") for t in inner)
    assert bool((pids == mf.random_token_probes(n=16, length=12, seed=3)[0]).all())


def test_distill_loss():
    import torch

    from bench import lenet

    torch.manual_seed(0)
    logits = torch.randn(8, 10, requires_grad=True)
    labels = torch.randint(0, 10, (8,))
    ce = torch.nn.functional.cross_entropy(logits, labels)
    teacher = torch.randn(8, 10)
    # alpha 0 is plain cross-entropy; a student equal to its teacher adds no KL term
    assert torch.allclose(lenet.distill_loss(logits, teacher, labels, alpha=0.0), ce)
    assert torch.allclose(lenet.distill_loss(logits, logits.detach(), labels, alpha=0.5), 0.5 * ce)
    # the KL term pulls the student towards the teacher
    loss = lenet.distill_loss(logits, teacher, labels, alpha=1.0, temperature=2.0)
    assert loss.item() > 0
    loss.backward()
    step = logits.detach() - 0.5 * logits.grad
    after = lenet.distill_loss(step, teacher, labels, alpha=1.0, temperature=2.0)
    assert after.item() < loss.item()


def test_structure_and_fixed_masks():
    """Group-lasso training returns pixel masks; pruning keeps those pixels removed."""
    import torch

    from bench import lenet
    rng = np.random.default_rng(0)
    data = {"x_train": rng.random((256, 1, 28, 28), dtype=np.float32),
            "y_train": rng.integers(0, 10, 256), "x_val": np.zeros((0, 1, 28, 28), np.float32),
            "y_val": np.zeros(0, np.int64)}
    torch.manual_seed(0)
    model = lenet.LeNet300()
    fixed = lenet.structure(model, data, lam=1e-4, epochs=1, keep_inputs=0.5)
    assert list(fixed) == ["fc1.weight"]
    pixels = fixed["fc1.weight"].any(0)
    assert int(pixels.sum()) == 392 and bool(fixed["fc1.weight"][:, pixels].all())
    masks = lenet.prune_retrain(model, data, {"fc1.weight": 0.9}, 1, gradual=False, fixed=fixed)
    assert not model.fc1.weight[:, ~pixels].any()
    assert int(masks["fc1.weight"].sum()) == 784 * 300 - int(0.9 * 784 * 300)  # exact sparsity
    # a convolutional first layer has no pixel groups: units only, no fixed masks
    conv = lenet.LeNet5()
    before = conv.fc1.weight.detach().clone()
    small = {k: v[:64] for k, v in data.items()}
    assert lenet.structure(conv, small, lam=1e-4, epochs=1) == {}
    assert not torch.equal(conv.fc1.weight, before)          # it did train
