"""Fine-tuning helpers (PyTorch) for pruned, weight-shared and Weightless-coded
models, built on the library's own kernels so the fine-tuned model re-encodes
with the same recipe.

Ways to recover accuracy after lossy compression, each usable from an
ordinary PyTorch training loop:

* **Masked training** (pruning): :func:`prune_model` computes keep-masks with
  ``wcodec.kernels.prune`` (what the ``prune`` codec applies);
  :class:`MaskedTraining` zeroes the pruned weights, masks their gradients
  (tensor hooks) and -- since Adam or momentum would still move a weight whose
  gradient is zero, from its running averages -- re-zeroes them after every
  ``optimizer.step()`` (:meth:`MaskedTraining.enforce`, called for you when the
  optimizer is attached).
* **Dead units**: :func:`remove_dead_units` zeroes the weights of hidden units
  whose outputs no remaining weight reads (common after heavy pruning); the
  model's outputs do not change and the coded file gets smaller.
* **Structured sparsity**: :func:`group_lasso` is a penalty to add to the loss
  that drives whole hidden units (and optionally input features) to zero;
  :func:`unit_norms` measures each unit's group and :func:`unit_masks` turns
  the weakest into keep-masks. Nonzeros that sit in few rows and columns cost
  the ``linerice`` coder fewer bits each.
* **Shared-weight training** (Deep Compression): :func:`cluster_model` clusters
  each layer with ``wcodec.kernels.kmeans`` (what the ``cluster`` codec does)
  and replaces its weight by ``codebook[indices]`` (:class:`SharedWeights`):
  the codebook is the trainable parameter, the gradient of a centroid is the
  sum of the gradients of its weights, and the layer keeps at most ``2**bits``
  distinct values. :meth:`SharedWeights.export` gives the final weights.
* **Weightless** (Reagen et al., 2018): :func:`encode_layer_lossy` runs
  prune -> cluster -> ``bloomier`` (lossy) -> decode on one weight and returns
  it *with* its false positives; :class:`Weightless` drives the loop: encode
  layer i, freeze it, fine-tune the remaining layers, repeat -- and builds the
  state dict + recipe whose file decodes to exactly the fine-tuned model.

Example (masked, then shared-weight fine-tuning, then saving)::

    import torch, wcodec
    from wcodec import finetune as ft

    masks = ft.prune_model(model, 0.9)                    # every >= 2-D weight
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    masked = ft.MaskedTraining(model, masks, optimizer=opt)
    for x, y in data:                                     # pruned weights stay 0
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    masked.remove()

    shared = ft.cluster_model(model, bits=4)              # {name: SharedWeights}
    opt = torch.optim.Adam(model.parameters(), 1e-4)      # now holds the codebooks
    for x, y in data:
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    ft.remove_shared(shared)                              # plain weights again
    recipe = {"rules": [{"pipeline": [{"id": "prune", "sparsity": 0.9},
                                      {"id": "cluster", "bits": 4},
                                      {"id": "bloomier", "mode": "exact"}],
                         "dtypes": ["float"], "min_ndim": 2}], "extends": "lossless"}
    wcodec.save_file(model.state_dict(), "model.wcodec", recipe=recipe)

The Weightless loop::

    wl = ft.Weightless(model, bits=4, sparsity=0.9)
    for name in wl.layers:                # e.g. largest layers first
        wl.encode(name)                   # lossy-coded, frozen (requires_grad False)
        fine_tune(model, epochs=1)        # any loop; frozen layers get no gradient
    wcodec.save_file(wl.state_dict(), "model.wcodec", recipe=wl.recipe())
    # loading that file gives exactly the weights fine-tuned above
"""
from __future__ import annotations

import fnmatch
import glob
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .codecs import bloomier as _bloomier  # noqa: F401  (registers the codec)
from .codecs.base import ArraySpec
from .errors import ConfigError, InputError
from .kernels import kmeans as _kmeans
from .kernels import prune as _prune
from .pipeline import Pipeline

__all__ = ["select_parameters", "prune_model", "MaskedTraining", "apply_masks", "remove_dead_units",
           "unit_norms", "group_lasso", "unit_masks",
           "SharedWeights", "lookup", "cluster_model", "remove_shared", "weightless_pipeline",
           "encode_layer_lossy", "freeze", "Weightless"]


# --------------------------------------------------------------------------
# selection


def select_parameters(model: nn.Module, layers: str | Iterable[str] | None = None
                      ) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` pairs of ``model`` chosen by ``layers``: glob
    patterns (``fnmatch``) on the names of ``model.named_parameters()``; by
    default every parameter with at least 2 dimensions (weight matrices, conv
    kernels, embeddings). ConfigError if the patterns select nothing."""
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}")
    params = list(model.named_parameters())
    if layers is None:
        chosen = [(n, p) for n, p in params if p.dim() >= 2]
    else:
        patterns = [layers] if isinstance(layers, str) else list(layers)
        chosen = [(n, p) for n, p in params
                  if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    if not chosen:
        raise ConfigError(f"no parameter of the model matches {layers!r}")
    return chosen


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    """float32 numpy copy of a tensor (any float dtype, any device)."""
    return t.detach().to(device="cpu", dtype=torch.float32).numpy().copy()


# --------------------------------------------------------------------------
# masked training


def prune_model(model: nn.Module, sparsity: float, layers=None, *,
                scope: str = "tensor") -> dict[str, torch.Tensor]:
    """Magnitude-pruning keep-masks (bool tensors, True = keep) for the
    selected parameters, computed by ``wcodec.kernels.prune`` exactly as the
    ``prune`` codec does: ``scope="tensor"`` prunes ``floor(sparsity * n)``
    weights of each tensor, ``scope="global"`` that many in total across the
    selected tensors. The model is not modified; pass the masks to
    :class:`MaskedTraining`.

    After masked fine-tuning, the ``prune`` codec with the same ``sparsity``
    (tensor scope) selects exactly these zeros again."""
    if scope not in ("tensor", "global"):
        raise ConfigError(f"scope must be 'tensor' or 'global', got {scope!r}")
    chosen = select_parameters(model, layers)
    arrays = [_as_numpy(p) for _, p in chosen]
    if scope == "global":
        keeps = _prune.global_magnitude_masks(arrays, sparsity)
    else:
        keeps = [_prune.magnitude_mask(a, sparsity=sparsity) for a in arrays]
    return {name: torch.from_numpy(np.ascontiguousarray(k)) for (name, _), k in zip(chosen, keeps)}


class MaskedTraining:
    """Keep pruned weights at exactly zero while a model trains.

    ``masks`` maps parameter names (as in ``model.named_parameters()``) to
    keep-masks (bool tensors or arrays of the parameter's shape, True = keep).
    On creation the pruned weights are set to 0 and a gradient hook zeroes
    their gradients. Optimizers with running state (Adam, SGD momentum, ...)
    can still move a weight whose gradient is 0, so call :meth:`enforce` after
    every ``optimizer.step()`` -- or pass the optimizer (``optimizer=`` or
    :meth:`attach`), which registers a step post-hook doing it and also clears
    the optimizer state of the pruned entries.

    Use as a context manager, or call :meth:`remove` to drop the hooks."""

    def __init__(self, model: nn.Module, masks: Mapping[str, Any], optimizer=None):
        params = dict(model.named_parameters())
        self._items: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._handles: list[Any] = []
        for name, mask in masks.items():
            if name not in params:
                raise ConfigError(f"the model has no parameter named {name!r}")
            p = params[name]
            m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
            if m.dtype != torch.bool or tuple(m.shape) != tuple(p.shape):
                raise InputError(f"mask for {name!r} must be a bool tensor of shape "
                                 f"{tuple(p.shape)}, got {m.dtype} {tuple(m.shape)}")
            prune = (~m).to(p.device)
            self._items.append((p, prune))
            if p.requires_grad:
                self._handles.append(p.register_hook(
                    lambda g, prune=prune: g.masked_fill(prune, 0)))
        self.enforce()
        if optimizer is not None:
            self.attach(optimizer)

    def enforce(self) -> None:
        """Set every pruned weight to 0 (call after ``optimizer.step()``)."""
        with torch.no_grad():
            for p, prune in self._items:
                p.masked_fill_(prune, 0)

    def clear_state(self, optimizer) -> None:
        """Zero the optimizer state (momentum, Adam moments...) of the pruned
        entries, so stale averages cannot push them."""
        with torch.no_grad():
            for p, prune in self._items:
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape:
                        value.masked_fill_(prune, 0)

    def attach(self, optimizer) -> None:
        """Re-apply the masks after each ``optimizer.step()`` (step post-hook)."""
        self.clear_state(optimizer)
        self._handles.append(optimizer.register_step_post_hook(
            lambda opt, args, kwargs: self.enforce()))

    def sparsity(self) -> float:
        """Fraction of masked weights among the masked parameters."""
        total = sum(prune.numel() for _, prune in self._items)
        return float(sum(int(prune.sum()) for _, prune in self._items) / total) if total else 0.0

    def remove(self) -> None:
        """Remove the gradient and optimizer hooks (weights are left as they are)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> "MaskedTraining":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def apply_masks(model: nn.Module, masks: Mapping[str, Any], optimizer=None) -> MaskedTraining:
    """Zero the pruned weights and keep them zero: ``MaskedTraining(model, masks, optimizer)``."""
    return MaskedTraining(model, masks, optimizer)


def _chain(model: nn.Module, chain: Iterable[str]
           ) -> tuple[list[str], dict[str, nn.Parameter], list[tuple[str, str]]]:
    """Validated ``(names, parameters by name, (producer, consumer) pairs)`` of a
    chain of weights (see :func:`remove_dead_units`)."""
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}")
    names = [chain] if isinstance(chain, str) else list(chain)
    params = dict(model.named_parameters())
    for n in names:
        if n not in params:
            raise ConfigError(f"no parameter named {n!r} in the model")
    if len(names) < 2:
        raise ConfigError("the chain needs at least two layers")
    pairs = list(zip(names, names[1:]))
    for prod, cons in pairs:
        w, c = params[prod], params[cons]
        if w.dim() < 2 or c.dim() < 2 or w.shape[0] == 0 or c.shape[1] % w.shape[0]:
            raise ConfigError(f"{cons!r} (shape {tuple(c.shape)}) cannot read the output "
                              f"units of {prod!r} (shape {tuple(w.shape)})")
    return names, params, pairs


def _unit_bias(params: Mapping[str, nn.Parameter], weight: str) -> str | None:
    """The name of the bias of the layer owning ``weight`` (``<layer>.bias``, one
    per unit), if it has one."""
    if not weight.endswith("weight"):
        return None
    name = weight[:-len("weight")] + "bias"
    bias = params.get(name)
    return name if bias is not None and bias.shape == params[weight].shape[:1] else None


def remove_dead_units(model: nn.Module, chain: Iterable[str]) -> dict[str, int]:
    """Zero the weights (and bias) of every unit whose output nothing reads.

    ``chain`` names weights in forward order (``nn.Linear`` / ``nn.ConvNd``
    weights, first dimension = output units), each layer's output read only by
    the next one, through element-wise functions, pooling or flattening (a
    flattened channel ``u`` is read by a contiguous block of the next layer's
    inputs). Unit ``u`` of a layer is dead when every weight of the next layer
    that reads it is zero -- typical after heavy pruning, where 10-40% of the
    hidden units of a LeNet lose all their outgoing weights while keeping
    incoming ones. Zeroing those leaves the model's outputs exactly as they
    were and saves their coded positions and values. Repeats until nothing
    changes (a zeroed unit may leave an earlier one unread). Returns
    ``{weight name: units zeroed that still had nonzero weights}``."""
    names, params, pairs = _chain(model, chain)
    removed = dict.fromkeys(names[:-1], 0)
    with torch.no_grad():
        changed = True
        while changed:
            changed = False
            for prod, cons in reversed(pairs):
                weight, reader = params[prod], params[cons]
                units = weight.shape[0]
                read = (reader.reshape(reader.shape[0], units, -1) != 0).any(dim=2).any(dim=0)
                dead = ~read
                live_weights = (weight.reshape(units, -1) != 0).any(dim=1)
                hit = dead & live_weights
                if bool(hit.any()):
                    weight[dead] = 0
                    removed[prod] += int(hit.sum())
                    changed = True
                bias = _unit_bias(params, prod)
                if bias is not None:
                    params[bias][dead] = 0
    return removed


# --------------------------------------------------------------------------
# structured sparsity (group lasso)


def _inputs_key(weight: str) -> str:
    return weight + ":inputs"


def _unit_groups(model: nn.Module, chain: Iterable[str], inputs: bool
                 ) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """``({key: squared L2 norm of each group}, {key: group size})`` for the
    groups :func:`unit_norms` describes."""
    names, params, pairs = _chain(model, chain)
    squares, sizes = {}, {}
    for prod, cons in pairs:
        weight, reader = params[prod], params[cons]
        units = weight.shape[0]
        sq = weight.reshape(units, -1).square().sum(1)
        sq = sq + reader.reshape(reader.shape[0], units, -1).square().sum((0, 2))
        sizes[prod] = weight[0].numel() + reader.numel() // units
        bias = _unit_bias(params, prod)
        if bias is not None:
            sq = sq + params[bias].square()
            sizes[prod] += 1
        squares[prod] = sq
    if inputs:
        first = params[names[0]]
        key = _inputs_key(names[0])
        squares[key] = first.reshape(first.shape[0], first.shape[1], -1).square().sum((0, 2))
        sizes[key] = first.numel() // max(first.shape[1], 1)
    return squares, sizes


def unit_norms(model: nn.Module, chain: Iterable[str], inputs: bool = False
               ) -> dict[str, torch.Tensor]:
    """L2 norm of each unit's parameter group, differentiable.

    For every weight of ``chain`` but the last (same chain as
    :func:`remove_dead_units`), unit ``u``'s group is every parameter that
    exists only for it: its weight row (all inputs and kernel positions), its
    bias entry and the weights of the next layer that read it. With
    ``inputs``, also the groups of the first layer's input features (column
    ``j``, or input channel ``j`` of a convolution), under the key
    ``"<first weight>:inputs"`` -- the pixels of an MLP on images. Returns
    ``{key: 1-D tensor of norms}``; a unit whose group is all zero can be
    removed without changing the model's outputs."""
    squares, _ = _unit_groups(model, chain, inputs)
    return {key: sq.sqrt() for key, sq in squares.items()}


def group_lasso(model: nn.Module, chain: Iterable[str], inputs: bool = False) -> torch.Tensor:
    """Group-lasso penalty (Yuan & Lin 2006; Wen et al. 2016) over the groups of
    :func:`unit_norms`: the sum of ``sqrt(group size) * norm``. Added to the
    loss times a small factor (1e-5 to 1e-4 for a LeNet trained with Adam), it
    drives whole units (and, with ``inputs``, input features) to zero, so the
    nonzeros that remain after pruning sit in fewer rows and columns -- which
    the ``linerice`` coder stores for much less per nonzero than scattered
    ones. A scalar tensor with a gradient."""
    squares, sizes = _unit_groups(model, chain, inputs)
    return sum(float(np.sqrt(sizes[key])) * sq.sqrt().sum() for key, sq in squares.items())


@torch.no_grad()
def unit_masks(model: nn.Module, chain: Iterable[str], keep: Mapping[str, float]
               ) -> dict[str, torch.Tensor]:
    """Keep-masks (bool, True = keep) that remove whole units: ``keep`` maps a
    key of :func:`unit_norms` (a weight of ``chain`` but the last, or
    ``"<first weight>:inputs"``) to the fraction of its units to keep, those
    with the largest group norms (ties: lower index first). A removed unit
    loses its weight row, its bias entry and the next layer's weights that
    read it; a removed input feature loses its column. Returns masks for the
    parameters that lose anything, ready for :class:`MaskedTraining` (combine
    with magnitude masks by ``&``)."""
    names, params, pairs = _chain(model, chain)
    valid = set(names[:-1]) | {_inputs_key(names[0])}
    for key, fraction in keep.items():
        if key not in valid:
            raise ConfigError(f"unit_masks: {key!r} is not a weight of the chain with a next "
                              f"layer, nor {_inputs_key(names[0])!r}")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
                or not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"unit_masks: keep[{key!r}] must be a fraction in [0, 1], "
                              f"got {fraction!r}")
    norms = unit_norms(model, names, inputs=_inputs_key(names[0]) in keep)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
    for key, fraction in keep.items():
        norm = norms[key]
        alive = torch.zeros_like(norm, dtype=torch.bool)
        count = int(round(fraction * norm.numel()))
        alive[torch.sort(-norm, stable=True).indices[:count]] = True
        if key.endswith(":inputs"):
            first = names[0]
            masks[first] &= alive.reshape(1, -1, *([1] * (params[first].dim() - 2)))
            continue
        weight, reader = params[key], dict(pairs)[key]
        masks[key] &= alive.reshape(-1, *([1] * (weight.dim() - 1)))
        bias = _unit_bias(params, key)
        if bias is not None:
            masks[bias] &= alive
        read = alive.repeat_interleave(params[reader].shape[1] // weight.shape[0])
        masks[reader] &= read.reshape(1, -1, *([1] * (params[reader].dim() - 2)))
    return {n: m for n, m in masks.items() if not bool(m.all())}


# --------------------------------------------------------------------------
# shared-weight training


def lookup(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``codebook[indices]`` (any index shape) with a reproducible gradient:
    ``index_select``'s backward sums into the codebook in a fixed order, while
    the backward of ``codebook[indices]`` (an accumulating ``index_put_``) gives
    bit-different sums from run to run on several CPU threads."""
    flat = torch.index_select(codebook, 0, indices.reshape(-1))
    return flat.reshape(indices.shape)


class _Shared(nn.Module):
    """Parametrization ``codebook -> codebook[indices]`` (the codebook is the
    parametrized "original"). With ``zero``, entry 0 is used as 0.0 whatever
    is stored, so it gets no gradient."""

    def __init__(self, indices: torch.Tensor, codebook: torch.Tensor, zero: bool):
        super().__init__()
        self.register_buffer("indices", indices)
        self.zero = zero
        self._init: torch.Tensor | None = codebook

    def forward(self, codebook: torch.Tensor) -> torch.Tensor:
        if self.zero:
            codebook = torch.cat([codebook.new_zeros(1), codebook[1:]])
        return lookup(codebook, self.indices)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """The codebook: the one given at registration, afterwards (when the
        weight is assigned) the mean of the weights of each index."""
        if self._init is not None:
            codebook, self._init = self._init, None
            return codebook
        flat, idx = weight.detach().reshape(-1), self.indices.reshape(-1)
        k = int(idx.max()) + 1 if idx.numel() else 1
        sums = torch.zeros(k, dtype=flat.dtype, device=flat.device).index_add_(0, idx, flat)
        counts = torch.bincount(idx, minlength=k).clamp(min=1).to(flat.dtype)
        return sums / counts


class SharedWeights:
    """Train a layer's weight as ``codebook[indices]`` (Deep Compression).

    Registers a ``torch.nn.utils.parametrize`` parametrization on parameter
    ``name`` of ``module``: the trainable parameter becomes the codebook (the
    centroids, ``module.parametrizations.<name>.original``, also
    :attr:`codebook`) and ``module.<name>`` is computed as
    ``codebook[indices]``, so the gradient of each centroid is the sum of the
    gradients of the weights sharing it. With ``freeze_zero`` (default, when
    ``codebook[0] == 0``) centroid 0 -- the exact 0.0 that ``keep_zero``
    clustering gives pruned weights -- is always used as 0.0 and gets no
    gradient, so pruned weights stay pruned.

    Build the optimizer *after* wrapping (it must see the codebook).
    :meth:`export` returns the current dense weight, :meth:`remove` makes it
    a plain parameter again. Modules stay deep-copyable."""

    def __init__(self, module: nn.Module, indices, codebook, name: str = "weight",
                 freeze_zero: bool = True):
        if not isinstance(module, nn.Module):
            raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
        old = module._parameters.get(name)
        if old is None:
            raise ConfigError(f"{type(module).__name__} has no parameter {name!r}")
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor)
                              else indices).to(device=old.device, dtype=torch.long)
        cb = torch.as_tensor(np.asarray(codebook) if not isinstance(codebook, torch.Tensor)
                             else codebook).to(device=old.device, dtype=old.dtype)
        if tuple(idx.shape) != tuple(old.shape):
            raise InputError(f"indices have shape {tuple(idx.shape)}, "
                             f"the weight {tuple(old.shape)}")
        if cb.dim() != 1 or (idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= cb.numel())):
            raise InputError("codebook must be 1-D and cover every index")
        self.module, self.name = module, name
        zero = bool(freeze_zero and cb.numel() and float(cb[0]) == 0.0)
        parametrize.register_parametrization(module, name, _Shared(idx.clone(), cb.clone(), zero))

    @property
    def codebook(self) -> nn.Parameter:
        """The trainable centroids."""
        return self.module.parametrizations[self.name].original

    @property
    def indices(self) -> torch.Tensor:
        return self.module.parametrizations[self.name][0].indices

    def export(self) -> torch.Tensor:
        """The current weight ``codebook[indices]`` (a detached copy)."""
        with torch.no_grad():
            return getattr(self.module, self.name).detach().clone()

    def remove(self) -> torch.Tensor:
        """Make the weight a plain ``nn.Parameter`` holding the exported values; returns it."""
        parametrize.remove_parametrizations(self.module, self.name, leave_parametrized=True)
        return self.module._parameters[self.name]


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, attr = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attr


def cluster_model(model: nn.Module, bits: int, layers=None, *, init: str = "linear",
                  seed: int = 0, keep_zero: bool = True) -> dict[str, SharedWeights]:
    """Cluster every selected parameter into ``2**bits`` centroids with
    ``wcodec.kernels.kmeans.kmeans_1d`` (as the ``cluster`` codec does: same
    ``init``/``seed``/``keep_zero``) and wrap it in :class:`SharedWeights`.
    Returns ``{parameter name: SharedWeights}``; create the optimizer after
    this call. Since a trained layer has at most ``2**bits - 1`` distinct
    nonzero values, the ``cluster`` codec with the same ``bits`` codes it
    without loss."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ConfigError(f"bits must be an int in 1..8, got {bits!r}")
    k = max(2 ** bits, 2 if keep_zero else 1)
    out = {}
    for name, p in select_parameters(model, layers):
        codebook, idx = _kmeans.kmeans_1d(_as_numpy(p), k, init=init, seed=seed,
                                          keep_zero=keep_zero)
        module, attr = _owner(model, name)
        out[name] = SharedWeights(module, idx.astype(np.int64), codebook, attr,
                                  freeze_zero=keep_zero)
    return out


def remove_shared(shared: Mapping[str, SharedWeights]) -> None:
    """:meth:`SharedWeights.remove` on every entry (plain weights again)."""
    for s in shared.values():
        s.remove()


# --------------------------------------------------------------------------
# Weightless


def weightless_pipeline(bits: int = 4, sparsity: float = 0.9, *, value_bits: int | None = None,
                        max_fp_rate: float | None = None, seed: int = 0,
                        init: str = "linear", mode: str = "lossy") -> list[dict]:
    """The codec pipeline config ``prune -> cluster -> bloomier`` (the
    ``weightless`` recipe's, with these options)."""
    coder: dict[str, Any] = {"id": "bloomier", "mode": mode, "seed": seed}
    if value_bits is not None:
        coder["value_bits"] = value_bits
    if max_fp_rate is not None:
        coder["max_fp_rate"] = max_fp_rate
    return [{"id": "prune", "sparsity": sparsity},
            {"id": "cluster", "bits": bits, "init": init},
            coder]


def encode_layer_lossy(weight, bits: int = 4, sparsity: float = 0.9, *,
                       value_bits: int | None = None, max_fp_rate: float | None = None,
                       seed: int = 0, init: str = "linear", return_stats: bool = False):
    """Prune, cluster, Bloomier-code (lossy) and decode one weight.

    Returns the decoded weight *with* its false positives -- what a reader of
    the file gets -- as the same kind of object as ``weight`` (a torch tensor
    of the same dtype and device, or a numpy array). With ``return_stats``,
    returns ``(weight, stats)`` where ``stats`` holds the codec stats
    (``value_bits``, ``false_positives``, ``false_positive_rate``,
    ``fp_fraction``, ``pruned``, ``clusters``...) plus ``bytes`` (coded size,
    codebook included), ``rel_error`` = ``||decoded - weight|| / ||weight||``
    and ``fp_rel_error``, the part of it due to false positives."""
    is_torch = isinstance(weight, torch.Tensor)
    w = _as_numpy(weight) if is_torch else np.ascontiguousarray(weight, dtype=np.float32)
    pipeline = Pipeline(weightless_pipeline(bits, sparsity, value_bits=value_bits,
                                            max_fp_rate=max_fp_rate, seed=seed, init=init))
    spec = ArraySpec(tuple(w.shape), "float32")
    enc = pipeline.encode(w, spec)
    dec = pipeline.decode(enc.data, enc.streams, spec)
    result = torch.from_numpy(dec).to(device=weight.device, dtype=weight.dtype) if is_torch \
        else dec.astype(np.asarray(weight).dtype, copy=False)
    if not return_stats:
        return result
    stats = dict(enc.stats)
    stats["bytes"] = float(len(enc.data) + sum(len(v) for v in enc.streams.values()))
    norm = float(np.linalg.norm(w)) or 1.0
    keep = _prune.magnitude_mask(w, sparsity=sparsity)
    fp = (dec != 0) & ~keep
    stats["rel_error"] = float(np.linalg.norm(dec - w)) / norm
    stats["fp_rel_error"] = float(np.linalg.norm(dec[fp])) / norm
    return result, stats


def freeze(target: nn.Module | nn.Parameter) -> None:
    """Stop training a parameter, or every parameter of a module:
    ``requires_grad = False`` and its gradient dropped, so optimizers skip it."""
    params = [target] if isinstance(target, torch.Tensor) else list(target.parameters())
    for p in params:
        p.requires_grad_(False)
        p.grad = None


class Weightless:
    """The Weightless loop over the selected layers of ``model``.

    :meth:`encode` lossy-codes one layer (prune -> cluster -> bloomier,
    :func:`encode_layer_lossy`), writes the decoded weight -- false positives
    included -- into the model and freezes it; fine-tune the rest, then encode
    the next layer. :attr:`layers` lists the selected names, largest first.

    The codec pipeline is deterministic, so the file written by
    ``wcodec.save_file(wl.state_dict(), path, recipe=wl.recipe())`` -- which
    re-encodes each coded layer from its *original* weight -- decodes to
    exactly the weights the model was fine-tuned with. Other tensors are
    stored losslessly by that recipe."""

    def __init__(self, model: nn.Module, bits: int = 4, sparsity: float = 0.9, layers=None, *,
                 value_bits: int | None = None, max_fp_rate: float | None = None,
                 seed: int = 0, init: str = "linear"):
        self.model = model
        self.options = dict(bits=bits, sparsity=sparsity, value_bits=value_bits,
                            max_fp_rate=max_fp_rate, seed=seed, init=init)
        self.pipeline = weightless_pipeline(**self.options)
        Pipeline(self.pipeline)  # validate the options now
        chosen = select_parameters(model, layers)
        self.layers = [n for n, _ in sorted(chosen, key=lambda item: -item[1].numel())]
        self.sources: dict[str, np.ndarray] = {}
        self.stats: dict[str, dict[str, float]] = {}

    @property
    def pending(self) -> list[str]:
        """Selected layers not encoded yet, in :attr:`layers` order."""
        return [n for n in self.layers if n not in self.sources]

    def encode(self, name: str) -> dict[str, float]:
        """Encode layer ``name`` from its current weight, load the decoded
        weight into the model and freeze it; returns its stats."""
        if name not in self.layers:
            raise ConfigError(f"{name!r} is not one of the selected layers")
        if name in self.sources:
            raise ConfigError(f"{name!r} is already encoded")
        p = dict(self.model.named_parameters())[name]
        source = _as_numpy(p)
        decoded, stats = encode_layer_lossy(p.detach(), return_stats=True, **self.options)
        with torch.no_grad():
            p.copy_(decoded)
        freeze(p)
        self.sources[name] = source
        self.stats[name] = stats
        return stats

    def state_dict(self) -> dict[str, Any]:
        """``model.state_dict()`` with each encoded layer's original weight,
        for ``wcodec.save_file(..., recipe=self.recipe())``."""
        state = {k: v.detach() for k, v in self.model.state_dict().items()}
        for name, source in self.sources.items():
            state[name] = torch.from_numpy(source).to(state[name].dtype)
        return state

    def recipe(self) -> dict[str, Any]:
        """A recipe dict: the Weightless pipeline for the encoded layers
        (matched by exact name), lossless ``bytegroup`` for everything else."""
        rules: list[dict[str, Any]] = []
        if self.sources:
            rules.append({"match": [glob.escape(n) for n in self.sources],
                          "pipeline": self.pipeline})
        rules.append({"pipeline": [{"id": "bytegroup"}]})
        return {"name": "weightless-finetuned", "rules": rules}
