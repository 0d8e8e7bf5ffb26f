"""LeNet-300-100 and LeNet-5 on Fashion-MNIST: training from a fixed seed (fp32
checkpoint cached as .safetensors under bench/cache/), evaluation, and a
minimal Deep-Compression fine-tuning loop (optionally group-lasso training
first, ``structure`` -> prune -> retrain with masks -> k-means cluster ->
retrain the shared centroids -> zero dead units with
``wcodec.finetune.remove_dead_units``)."""
from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from wcodec.finetune import group_lasso, lookup, remove_dead_units, unit_masks
from wcodec.kernels import kmeans, prune


class LeNet300(nn.Module):
    """784-300-100-10 MLP (LeCun et al. 1998; the Deep Compression LeNet-300-100)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    """The Caffe LeNet-5 of the Deep Compression paper (431,080 parameters,
    1720 KB fp32): conv5x5(20) -> max-pool -> conv5x5(50) -> max-pool -> fc 500
    (ReLU) -> fc 10, valid convolutions on 28x28 (Caffe's ``lenet_train_test``)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


MODELS = {"lenet300": LeNet300, "lenet5": LeNet5}


def weight_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.ndim >= 2]


@torch.no_grad()
def correct(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 2000) -> np.ndarray:
    """Per-example bool: is the model's top-1 class the label."""
    model.eval()
    hits = [model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy() == y[i:i + batch]
            for i in range(0, len(x), batch)]
    return np.concatenate(hits) if hits else np.zeros(0, bool)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 2000) -> float:
    return float(correct(model, x, y, batch).mean()) if len(x) else 0.0


def paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of ``mean(a) - mean(b)`` for per-example hits of two models
    on the same examples (only the examples where they disagree add noise)."""
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0


def _batches(n: int, batch: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch):
        yield order[i:i + batch]


def train(model: nn.Module, data: dict, epochs: int, lr: float = 1e-3, seed: int = 0,
          batch: int = 128, params=None, after_step=None, forward=None, label: str = "",
          fraction: float = 1.0, lr_end: float | None = None,
          teacher: nn.Module | None = None, penalty=None) -> None:
    """Adam on cross-entropy; ``after_step()`` runs after each optimizer step
    (masks / centroid sharing); ``forward(x)`` replaces ``model(x)``;
    ``fraction`` < 1 stops each epoch after that share of the batches;
    ``lr_end``: cosine decay from ``lr`` to it over the run; ``teacher``: the
    loss is ``distill_loss`` against that frozen model's logits; ``penalty()``:
    a scalar added to each batch's loss (not to the reported loss)."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    x, y = data["x_train"], data["y_train"]
    steps, step = epochs * int(np.ceil(fraction * len(x) / batch)), 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        total, seen = 0.0, 0
        limit = int(np.ceil(fraction * len(x)))
        for idx in _batches(len(x), batch, rng):
            if seen >= limit:
                break
            xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
            if lr_end is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_end + 0.5 * (lr - lr_end) * (1 + np.cos(np.pi * step / steps))
            step += 1
            logits = (forward or model)(xb)
            if teacher is None:
                loss = F.cross_entropy(logits, yb)
            else:
                with torch.no_grad():
                    target = teacher(xb)
                loss = distill_loss(logits, target, yb)
            opt.zero_grad(set_to_none=True)
            (loss if penalty is None else loss + penalty()).backward()
            opt.step()
            if after_step is not None:
                after_step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        if label:
            print(f"    {label} epoch {epoch + 1}/{epochs}: loss {total / seen:.4f}, "
                  f"val {accuracy(model, data['x_val'], data['y_val']):.4f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                 alpha: float = 0.5, temperature: float = 2.0) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015): ``alpha`` x T^2 x KL(teacher ||
    student) on logits softened by T, plus (1 - ``alpha``) x cross-entropy."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                  log_target=True, reduction="batchmean")
    return alpha * t * t * kl + (1 - alpha) * F.cross_entropy(logits, labels)


# the fp32 models' learning rate decays (cosine) from 1e-3 to this: a converged
# baseline. With a constant rate the last epoch's accuracy swings by ~1 pp with the
# seed and split, and every "within 0.5 pp of fp32" claim with it.
FP32_LR_END = 1e-5


def trained(name: str, data: dict, epochs: int, cache_dir: str, seed: int = 0) -> tuple[nn.Module, str]:
    """The fp32 model trained from ``seed`` on ``data["x_train"]`` (cached; the
    number of training images is in the file name) and its safetensors path."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(seed)
    model = MODELS[name]()
    params = sum(p.numel() for p in model.parameters())  # the architecture, in the cache key
    n_train = len(data["x_train"])
    path = os.path.join(cache_dir,
                        f"{name}-{params}p-fmnist-t{n_train}-e{epochs}-cos-s{seed}.safetensors")
    if os.path.exists(path):
        model.load_state_dict(load_file(path))
        print(f"  {name}: cached checkpoint {path}", flush=True)
    else:
        print(f"  {name}: training {epochs} epochs (seed {seed}) ...", flush=True)
        train(model, data, epochs, seed=seed, label=name, lr_end=FP32_LR_END)
        os.makedirs(cache_dir, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path,
                  metadata={"dataset": "fashion-mnist", "train_images": str(n_train),
                            "epochs": str(epochs), "seed": str(seed)})
    return model.eval(), path


# -- minimal Deep Compression fine-tuning ------------------------------------
def magnitude_masks(model: nn.Module, sparsity: dict[str, float]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: torch.from_numpy(prune.magnitude_mask(params[n].detach().numpy(), sparsity=s))
            for n, s in sparsity.items()}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            params[n].mul_(m)


def prune_retrain(model: nn.Module, data: dict, sparsity: dict[str, float], epochs: int,
                  gradual: bool, seed: int = 0, lr: float = 1e-3,
                  teacher: nn.Module | None = None,
                  fixed: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Magnitude-prune the layers in ``sparsity`` and retrain with the masks
    fixed. ``gradual``: the sparsity rises over the first two thirds of the
    epochs (cubic schedule, Zhu & Gupta 2017) with masks recomputed each
    epoch, then the rest train at 0.4 x ``lr``; otherwise one-shot. ``fixed``:
    keep-masks (e.g. removed units) and-ed into every mask. Returns the final
    keep-masks."""
    apply_masks(model, fixed or {})  # removed units are zeros: magnitude pruning takes them first

    def masks_for(s):
        masks = dict(fixed or {})
        for n, m in magnitude_masks(model, s).items():
            masks[n] = m & masks[n] if n in masks else m
        return masks

    if gradual and epochs >= 2:
        ramp = max(1, 2 * epochs // 3)
        for e in range(epochs):
            f = min(1.0, (e + 1) / ramp)
            s = {n: v * (1 - (1 - f) ** 3) for n, v in sparsity.items()}
            masks = masks_for(s)
            apply_masks(model, masks)
            train(model, data, 1, lr=lr if e < ramp else 0.4 * lr, seed=seed + 100 + e,
                  after_step=lambda: apply_masks(model, masks), teacher=teacher,
                  label=f"prune (sparsity x{f:.2f})")
        return masks
    masks = masks_for(sparsity)
    apply_masks(model, masks)
    if epochs:
        train(model, data, epochs, lr=lr, seed=seed + 100,
              after_step=lambda: apply_masks(model, masks), teacher=teacher,
              label="masked retrain")
    return masks


def cluster_retrain(model: nn.Module, data: dict, bits: dict[str, int], epochs: int,
                    seed: int = 0, lr: float = 1e-4, lr_end: float = 1e-5,
                    teacher: nn.Module | None = None) -> None:
    """k-means each layer in ``bits`` (zero kept exact: pruned weights stay
    pruned), then train the shared centroids (gradients summed per cluster) and
    the other parameters; the model ends with every clustered weight equal to
    its centroid, rounded to float16 (the bench stores float16 codebooks, so
    the file holds exactly the model evaluated here)."""
    params = dict(model.named_parameters())
    books, idxs = {}, {}
    for n, b in bits.items():
        cb, idx = kmeans.kmeans_1d(params[n].detach().numpy(), 2 ** b, keep_zero=True)
        books[n] = torch.tensor(cb, requires_grad=True)
        idxs[n] = torch.from_numpy(idx.astype(np.int64))
    others = [p for n, p in params.items() if n not in bits]

    def sync():
        with torch.no_grad():
            for n in bits:
                books[n][0] = 0.0  # index 0 is the pruned zero
                params[n].copy_(lookup(books[n], idxs[n]))

    sync()
    if epochs:
        def forward(x):
            state = {n: lookup(books[n], idxs[n]) for n in bits}
            return torch.func.functional_call(model, state, (x,))

        train(model, data, epochs, lr=lr, seed=seed + 200, params=list(books.values()) + others,
              after_step=sync, forward=forward, label="centroid retrain", lr_end=lr_end,
              teacher=teacher)
    with torch.no_grad():
        for book in books.values():
            book.copy_(book.half().float())
    sync()


def structure(model: nn.Module, data: dict, lam: float, epochs: int,
              keep_inputs: float = 1.0, seed: int = 0,
              teacher: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Train ``epochs`` with ``lam`` x ``wcodec.finetune.group_lasso`` over the
    hidden units (and, for an MLP, the input pixels) added to the loss: whole
    units fade to ~0 and magnitude pruning then removes them first. Returns
    keep-masks that remove all but the ``keep_inputs`` share of the input
    pixels with the largest norms (none for a convolutional first layer)."""
    chain = weight_names(model)
    inputs = dict(model.named_parameters())[chain[0]].dim() == 2
    train(model, data, epochs, seed=seed + 300, teacher=teacher, label="group lasso",
          penalty=lambda: lam * group_lasso(model, chain, inputs=inputs))
    return unit_masks(model, chain, {chain[0] + ":inputs": keep_inputs}) if inputs else {}


def deep_compress(model: nn.Module, data: dict, sparsity: dict[str, float], bits: dict[str, int],
                  prune_epochs: int, cluster_epochs: int, gradual: bool, seed: int = 0,
                  teacher: nn.Module | None = None, group: dict | None = None) -> nn.Module:
    """Optionally learn structure first (``group``: keyword arguments of
    ``structure``), then prune (masked retraining), cluster (centroid retraining),
    all distilled from ``teacher`` when given (see ``train``), then zero the
    weights of units nothing reads any more (``wcodec.finetune.remove_dead_units``:
    outputs unchanged, fewer positions to code)."""
    fixed = structure(model, data, seed=seed, teacher=teacher, **group) if group else None
    prune_retrain(model, data, sparsity, prune_epochs, gradual, seed, teacher=teacher,
                  fixed=fixed)
    cluster_retrain(model, data, bits, cluster_epochs, seed, teacher=teacher)
    remove_dead_units(model, weight_names(model))
    return model.eval()
