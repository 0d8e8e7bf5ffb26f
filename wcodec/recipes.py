"""Recipes: rules that pick a codec pipeline for each tensor.

A recipe is an ordered list of rules; the first rule whose filters match a
tensor (name glob, dtype, minimum size) and whose pipeline accepts the tensor's
dtype wins. Tensors no rule takes are stored ``raw``. Recipes are built in (see
``RECIPES``) or read from a TOML file::

    name = "my-recipe"
    extends = "lossless"            # optional: a built-in name or a .toml path (relative
                                    # to this file); these rules go before its rules
    [[rules]]
    match = ["*.weight"]            # name globs (fnmatch); default ["*"]
    exclude = ["*embeddings*"]      # optional
    dtypes = ["float32"]            # optional; "float" means any float dtype
    min_size = 1024                 # optional: minimum number of elements
    min_ndim = 2                    # optional
    pipeline = [{ id = "cast", dtype = "float16" }, { id = "bytegroup" }]
"""
from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from . import dtypes
from .codecs.base import ArraySpec, codec_class
from .errors import ConfigError, InputError, WcodecError
from .pipeline import Pipeline

RAW = [{"id": "raw"}]


@dataclass
class Rule:
    pipeline: list[dict[str, Any]]
    match: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    dtypes: list[str] | None = None
    min_size: int = 0
    min_ndim: int = 0

    def matches(self, name: str, spec: ArraySpec) -> bool:
        if not any(fnmatch.fnmatchcase(name, p) for p in self.match):
            return False
        if any(fnmatch.fnmatchcase(name, p) for p in self.exclude):
            return False
        if self.dtypes is not None:
            is_float = dtypes.get(spec.dtype).is_float
            if spec.dtype not in self.dtypes and not ("float" in self.dtypes and is_float):
                return False
        return spec.size >= self.min_size and len(spec.shape) >= self.min_ndim


@dataclass
class Recipe:
    name: str
    rules: list[Rule]
    description: str = ""

    def match(self, name: str, spec: ArraySpec) -> tuple[int, Pipeline]:
        """(index of the rule, its pipeline) for the first matching rule that
        can take this tensor; (-1, raw) if none can."""
        for i, rule in enumerate(self.rules):
            if rule.matches(name, spec):
                pipeline = Pipeline(rule.pipeline)
                try:
                    pipeline.specs(spec)
                except ConfigError:
                    continue
                return i, pipeline
        return -1, Pipeline(RAW)

    def pipeline_for(self, name: str, spec: ArraySpec) -> Pipeline:
        """The pipeline of the first matching rule that can take this tensor."""
        return self.match(name, spec)[1]

    def with_options(self, **options: Any) -> "Recipe":
        """A copy where every codec that has an option named like a key gets that
        value (CLI knobs such as ``bits``, ``sparsity``, ``group_size``)."""
        options = {k: v for k, v in options.items() if v is not None}
        rules = []
        for rule in self.rules:
            pipeline = []
            for config in rule.pipeline:
                config = dict(config)
                params = codec_class(config["id"]).params
                config.update({k: v for k, v in options.items() if k in params})
                pipeline.append(config)
            rules.append(Rule(pipeline, rule.match, rule.exclude, rule.dtypes,
                              rule.min_size, rule.min_ndim))
        return Recipe(self.name, rules, self.description)


def _cast_then_bytegroup(dtype: str) -> list[Rule]:
    return [Rule([{"id": "cast", "dtype": dtype}, {"id": "bytegroup"}], dtypes=["float32", "float64"]),
            Rule([{"id": "bytegroup"}])]


# Lossy recipes touch only weight matrices/kernels/embeddings (>= 2-D, >= 4096
# elements); biases, norms and small tensors stay lossless (bytegroup).
MIN_LOSSY_SIZE = 4096


def _lossy(pipeline: list[dict]) -> list[Rule]:
    return [Rule(pipeline, dtypes=["float"], min_size=MIN_LOSSY_SIZE, min_ndim=2),
            Rule([{"id": "bytegroup"}])]


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("lossless", [Rule([{"id": "bytegroup"}])],
           "bit-exact: byte planes of every tensor, each zstd-coded (ZipNN-style)"),
    Recipe("raw", [Rule(RAW)], "bit-exact, uncompressed (memory-mappable streams)"),
    Recipe("fp16", _cast_then_bytegroup("float16"),
           "float32/float64 tensors cast to float16, then bytegroup; others lossless"),
    Recipe("bf16", _cast_then_bytegroup("bfloat16"),
           "float32/float64 tensors cast to bfloat16, then bytegroup; others lossless"),
    Recipe("int8", _lossy([{"id": "quantize", "bits": 8, "granularity": "channel"},
                           {"id": "huffman"}]),
           "8-bit symmetric per-output-channel quantization of weight matrices, Huffman-coded"),
    Recipe("int4", _lossy([{"id": "quantize", "bits": 4, "granularity": "group", "group_size": 64},
                           {"id": "bitpack", "bits": 4}]),
           "4-bit symmetric quantization per group of 64 weights (float32 scale each), "
           "bit-packed for fast loading"),
    Recipe("deep-compression", _lossy([{"id": "prune", "sparsity": 0.9},
                                       {"id": "cluster", "bits": 5},
                                       {"id": "auto", "candidates": ["huffman", "zerorun", "sparse",
                                                                      "linerice"]}]),
           "Deep Compression: magnitude pruning (90%), 32-cluster k-means weight sharing, then the "
           "smallest of Huffman / zero-run / relative-index / per-line Rice coding per tensor"),
    Recipe("weightless", _lossy([{"id": "prune", "sparsity": 0.9}, {"id": "cluster", "bits": 4},
                                 {"id": "bloomier", "mode": "lossy"}]),
           "Weightless: magnitude pruning (90%), 16-cluster weight sharing, nonzero positions in a "
           "Bloomier filter; a zero weight decodes as a random cluster with probability "
           "(K-1)/2^t <= 1/64 (fine-tune with wcodec.finetune.Weightless)"),
    Recipe("weightless-exact", _lossy([{"id": "prune", "sparsity": 0.9}, {"id": "cluster", "bits": 4},
                                       {"id": "bloomier", "mode": "exact"}]),
           "as weightless, with the false positives stored as an exception list: decodes exactly "
           "to the pruned, clustered weights"),
    Recipe("auto", _lossy([{"id": "quantize", "mode": "step", "step_ratio": 0.25},
                           {"id": "auto"}]),
           "entropy-constrained scalar quantization (step = 0.25 x row std), then the smallest "
           "exact coding of the levels among huffman/zerorun/sparse/bitpack/linerice"),
]}


def _rule_from_dict(obj: Any, where: str) -> Rule:
    if not isinstance(obj, dict) or "pipeline" not in obj:
        raise ConfigError(f"{where}: each rule needs a 'pipeline'")
    known = {"pipeline", "match", "exclude", "dtypes", "min_size", "min_ndim"}
    if set(obj) - known:
        raise ConfigError(f"{where}: unknown rule keys {sorted(set(obj) - known)}")
    rule = Rule(**obj)
    for key in ("match", "exclude"):
        value = getattr(rule, key)
        if isinstance(value, str):
            setattr(rule, key, [value])
        elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key} must be a glob or a list of globs")
    for key in ("min_size", "min_ndim"):
        value = getattr(rule, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: {key} must be a non-negative integer")
    if rule.dtypes is not None:
        if not isinstance(rule.dtypes, list) or not all(isinstance(d, str) for d in rule.dtypes):
            raise ConfigError(f"{where}: dtypes must be a list of dtype names")
        for d in rule.dtypes:
            if d != "float":
                dtypes.get(d)
    if not isinstance(rule.pipeline, list):
        raise ConfigError(f"{where}: pipeline must be a list of codec configs")
    Pipeline.from_config(rule.pipeline)  # validates ids, options and order
    return rule


def recipe_from_dict(obj: dict[str, Any], default_name: str = "custom",
                     _chain: tuple[str, ...] = (), base_dir: str | None = None) -> Recipe:
    """Build a recipe from the TOML structure described in the module docstring.
    A relative ``extends`` path is taken from ``base_dir`` when given (the
    directory of the recipe file it was read from), else from the current
    directory."""
    known = {"name", "description", "extends", "rules"}
    if not isinstance(obj, dict):
        raise ConfigError(f"a recipe must be a table/dict, got {type(obj).__name__}")
    if set(obj) - known:
        raise ConfigError(f"recipe: unknown keys {sorted(set(obj) - known)}")
    if not isinstance(obj.get("rules", []), list):
        raise ConfigError("recipe: 'rules' must be a list of tables")
    for key in ("name", "description", "extends"):
        if key in obj and not isinstance(obj[key], str):
            raise ConfigError(f"recipe: '{key}' must be a string")
    rules = [_rule_from_dict(r, f"recipe rule {i}") for i, r in enumerate(obj.get("rules", []))]
    if "extends" in obj:
        parent = obj["extends"]
        if base_dir is not None and parent not in RECIPES and not os.path.isabs(parent):
            parent = os.path.join(base_dir, parent)
        rules += get_recipe(parent, _chain=_chain).rules
    if not rules:
        raise ConfigError("recipe: no rules")
    return Recipe(str(obj.get("name", default_name)), rules, str(obj.get("description", "")))


def get_recipe(recipe: str | os.PathLike | Recipe | dict, *, _chain: tuple[str, ...] = ()) -> Recipe:
    """A recipe from a built-in name, a TOML file path, a dict or a Recipe."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return recipe_from_dict(recipe, _chain=_chain)
    if isinstance(recipe, str) and recipe in RECIPES:
        return RECIPES[recipe]
    try:
        path = os.fspath(recipe)
    except TypeError:
        raise ConfigError(f"a recipe is a name, a .toml path, a dict or a Recipe, "
                          f"not {type(recipe).__name__}") from None
    if path.endswith(".toml") or os.path.exists(path):
        real = os.path.realpath(path)
        if real in _chain:
            raise ConfigError(f"recipe file {path} extends itself (through {' -> '.join(_chain)})")
        try:
            with open(path, "rb") as f:
                obj = tomllib.load(f)
        except OSError as exc:
            raise InputError(f"cannot read recipe file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"recipe file {path}: {exc}") from None
        try:
            return recipe_from_dict(obj, os.path.splitext(os.path.basename(path))[0],
                                    _chain=_chain + (real,), base_dir=os.path.dirname(os.path.abspath(path)))
        except (WcodecError, TypeError) as exc:
            raise ConfigError(f"recipe file {path}: {exc}") from None
    raise ConfigError(f"unknown recipe {recipe!r}; built-in recipes: {', '.join(RECIPES)} "
                      "(or give a .toml file)")
