"""Recipes: rule matching, first-match order, raw fallback, built-ins, TOML
recipe files (with ``extends``), validation errors and ``with_options``."""
from __future__ import annotations

import pathlib
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wcodec
from conftest import ALL_DTYPES, BUILTIN_RECIPES, FLOAT_DTYPES, INT_DTYPES, shapes, tensor_names
from wcodec import ConfigError, InputError, Pipeline, Recipe, UnknownCodec, get_recipe
from wcodec.codecs import ArraySpec
from wcodec.recipes import RAW, RECIPES, Rule, recipe_from_dict

F16 = [{"id": "cast", "dtype": "float16"}, {"id": "bytegroup"}]
BG = [{"id": "bytegroup"}]
ZS = [{"id": "raw"}, {"id": "zstd", "level": 1}]


def spec(shape=(4, 4), dtype="float32"):
    return ArraySpec(tuple(shape), dtype)


def chosen(recipe: Recipe, name: str, s: ArraySpec) -> str:
    return recipe.pipeline_for(name, s).describe()


def write_toml(tmp_path, text: str, name: str = "r.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------
# rule matching
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("patterns,name,hit", [
    (["*"], "anything", True),
    (["*.weight"], "layer.0.weight", True),
    (["*.weight"], "layer.0.bias", False),
    (["*.weight"], "weight", False),
    (["layer.?.bias"], "layer.3.bias", True),
    (["layer.?.bias"], "layer.12.bias", False),
    (["[ab]*"], "attn", True),
    (["[ab]*"], "cat", False),
    (["[!ab]*"], "cat", True),
    (["*.Weight"], "x.weight", False),  # case-sensitive on every platform
    (["enc*", "dec*"], "decoder.w", True),
    (["ω*"], "ω.weight", True),
    (["*/*"], "a/b", True),
    ([], "x", False),
])
def test_match_globs(patterns, name, hit):
    assert Rule(BG, match=patterns).matches(name, spec()) is hit


@pytest.mark.parametrize("exclude,name,hit", [
    ([], "enc.embeddings.weight", True),
    (["*embeddings*"], "enc.embeddings.weight", False),
    (["*embeddings*"], "enc.attn.weight", True),
    (["*.bias", "*norm*"], "ln_norm.weight", False),
    (["*"], "x", False),
])
def test_exclude_globs(exclude, name, hit):
    assert Rule(BG, match=["*"], exclude=exclude).matches(name, spec()) is hit


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_dtype_filters(dtype):
    s = spec(dtype=dtype)
    is_float = dtype in FLOAT_DTYPES
    assert Rule(BG, dtypes=["float"]).matches("x", s) is is_float
    assert Rule(BG, dtypes=[dtype]).matches("x", s)
    assert Rule(BG, dtypes=["float", dtype]).matches("x", s)
    others = [d for d in ALL_DTYPES if d != dtype]
    assert not Rule(BG, dtypes=others).matches("x", s)
    assert Rule(BG, dtypes=None).matches("x", s)
    assert not Rule(BG, dtypes=[]).matches("x", s)


def test_float_filter_covers_exactly_the_float_dtypes():
    rule = Rule(BG, dtypes=["float"])
    assert [d for d in ALL_DTYPES if rule.matches("x", spec(dtype=d))] == FLOAT_DTYPES
    assert set(FLOAT_DTYPES) == {"float16", "bfloat16", "float32", "float64"}


@pytest.mark.parametrize("min_size,shape,hit", [
    (0, (), True), (1, (), True), (2, (), False),
    (0, (0,), True), (1, (0,), False),
    (12, (3, 4), True), (13, (3, 4), False), (11, (3, 4), True),
    (1024, (32, 32), True), (1025, (32, 32), False),
])
def test_min_size(min_size, shape, hit):
    assert Rule(BG, min_size=min_size).matches("x", spec(shape)) is hit


@pytest.mark.parametrize("min_ndim,shape,hit", [
    (0, (), True), (1, (), False), (1, (5,), True), (2, (5,), False), (2, (1, 1), True),
    (2, (0, 3), True), (3, (2, 2), False),
])
def test_min_ndim(min_ndim, shape, hit):
    assert Rule(BG, min_ndim=min_ndim).matches("x", spec(shape)) is hit


def test_filters_combine_with_and():
    rule = Rule(BG, match=["*.weight"], exclude=["*emb*"], dtypes=["float32"], min_size=10,
                min_ndim=2)
    assert rule.matches("l.weight", spec((4, 4)))
    assert not rule.matches("l.bias", spec((4, 4)))
    assert not rule.matches("emb.weight", spec((4, 4)))
    assert not rule.matches("l.weight", spec((4, 4), "float16"))
    assert not rule.matches("l.weight", spec((3, 3)))
    assert not rule.matches("l.weight", spec((16,)))


# ---------------------------------------------------------------------------
# pipeline choice: first match, fallback
# ---------------------------------------------------------------------------

def test_first_matching_rule_wins():
    r = Recipe("t", [Rule(ZS, match=["*.weight"]), Rule(F16, match=["*"]), Rule(BG)])
    assert chosen(r, "a.weight", spec()) == "raw+zstd"
    assert chosen(r, "a.bias", spec()) == "cast+bytegroup"
    r2 = Recipe("t", [Rule(F16), Rule(ZS, match=["*.weight"])])
    assert chosen(r2, "a.weight", spec()) == "cast+bytegroup"


def test_rule_order_decides_not_specificity():
    r = Recipe("t", [Rule(BG, match=["*"]), Rule(ZS, match=["exactly.this"])])
    assert chosen(r, "exactly.this", spec()) == "bytegroup"


@pytest.mark.parametrize("dtype", INT_DTYPES + ["bool"])
def test_cast_rule_on_ints_falls_through(dtype):
    r = Recipe("t", [Rule(F16), Rule(ZS)])
    assert chosen(r, "x", spec(dtype=dtype)) == "raw+zstd"
    only_cast = Recipe("t", [Rule(F16)])
    assert chosen(only_cast, "x", spec(dtype=dtype)) == "raw"


def test_no_matching_rule_gives_raw():
    r = Recipe("t", [Rule(BG, match=["*.weight"])])
    p = r.pipeline_for("a.bias", spec())
    assert isinstance(p, Pipeline) and p.get_config() == RAW == [{"id": "raw"}]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_builtin_recipes_choices(dtype):
    s = spec((8, 8), dtype)
    assert chosen(RECIPES["lossless"], "w", s) == "bytegroup"
    assert chosen(RECIPES["raw"], "w", s) == "raw"
    want = "cast+bytegroup" if dtype in ("float32", "float64") else "bytegroup"
    assert chosen(RECIPES["fp16"], "w", s) == want
    assert chosen(RECIPES["bf16"], "w", s) == want
    cast = RECIPES["fp16"].pipeline_for("w", s).codecs[0]
    if want == "cast+bytegroup":
        assert cast.dtype == "float16"
        assert RECIPES["bf16"].pipeline_for("w", s).codecs[0].dtype == "bfloat16"


def test_builtin_recipe_table():
    assert set(BUILTIN_RECIPES) <= set(RECIPES)
    for name, r in RECIPES.items():
        assert r.name == name and r.rules and r.description
        assert get_recipe(name) is r
    assert not RECIPES["lossless"].pipeline_for("x", spec()).lossy
    assert RECIPES["fp16"].pipeline_for("x", spec()).lossy


@given(name=tensor_names(), dtype=st.sampled_from(ALL_DTYPES), shape=shapes(allow_large=False),
       recipe=st.sampled_from(BUILTIN_RECIPES))
def test_pipeline_for_always_gives_a_usable_pipeline(name, dtype, shape, recipe):
    s = ArraySpec(tuple(shape), dtype)
    p = get_recipe(recipe).pipeline_for(name, s)
    specs = p.specs(s)  # never raises for the chosen pipeline
    assert specs[0] == s


def test_get_recipe_accepts_recipes_dicts_and_names():
    r = Recipe("mine", [Rule(BG)])
    assert get_recipe(r) is r
    d = get_recipe({"name": "d", "rules": [{"pipeline": ZS}]})
    assert d.name == "d" and chosen(d, "x", spec()) == "raw+zstd"
    assert get_recipe({"rules": [{"pipeline": ZS}]}).name == "custom"


@pytest.mark.parametrize("name", ["nope", "LOSSLESS", "", "fp8"])
def test_unknown_builtin_name(name):
    with pytest.raises(ConfigError, match="lossless"):
        get_recipe(name)


# ---------------------------------------------------------------------------
# TOML recipe files
# ---------------------------------------------------------------------------

def test_toml_recipe_file(tmp_path):
    path = write_toml(tmp_path, """
        name = "my-recipe"
        description = "test recipe"

        [[rules]]
        match = ["*.weight"]
        exclude = ["*embeddings*"]
        dtypes = ["float"]
        min_size = 16
        min_ndim = 2
        pipeline = [{ id = "cast", dtype = "float16" }, { id = "bytegroup", level = 5 }]

        [[rules]]
        match = "*.bias"
        pipeline = [{ id = "raw" }, { id = "zstd", level = 1 }]
    """)
    r = get_recipe(path)
    assert r.name == "my-recipe" and r.description == "test recipe"
    assert len(r.rules) == 2
    assert r.rules[1].match == ["*.bias"]  # a single glob is accepted
    assert chosen(r, "l.weight", spec((4, 4))) == "cast+bytegroup"
    assert r.pipeline_for("l.weight", spec((4, 4))).get_config()[1] == {"id": "bytegroup",
                                                                         "level": 5}
    assert chosen(r, "embeddings.weight", spec((4, 4))) == "raw"
    assert chosen(r, "l.weight", spec((4, 4), "int32")) == "raw"
    assert chosen(r, "l.weight", spec((3, 3))) == "raw"
    assert chosen(r, "l.bias", spec((4,))) == "raw+zstd"
    # os.PathLike works too
    assert get_recipe(pathlib.Path(path)).name == "my-recipe"


def test_toml_name_defaults_to_file_stem(tmp_path):
    path = write_toml(tmp_path, """
        [[rules]]
        pipeline = [{ id = "raw" }]
    """, name="stem-name.toml")
    assert get_recipe(path).name == "stem-name"


def test_toml_extends_builtin(tmp_path):
    path = write_toml(tmp_path, """
        extends = "fp16"
        [[rules]]
        match = ["*.norm"]
        pipeline = [{ id = "raw" }]
    """)
    r = get_recipe(path)
    # own rules first, then the base recipe's
    assert len(r.rules) == 1 + len(RECIPES["fp16"].rules)
    assert chosen(r, "x.norm", spec()) == "raw"
    assert chosen(r, "x.weight", spec()) == "cast+bytegroup"
    assert chosen(r, "x.weight", spec(dtype="int8")) == "bytegroup"


def test_toml_extends_only(tmp_path):
    r = get_recipe(write_toml(tmp_path, 'extends = "bf16"\n'))
    assert [x.pipeline for x in r.rules] == [x.pipeline for x in RECIPES["bf16"].rules]


def test_toml_extends_another_file(tmp_path):
    base = write_toml(tmp_path, """
        name = "base"
        [[rules]]
        match = ["*.weight"]
        pipeline = [{ id = "raw" }, { id = "zstd" }]
    """, name="base.toml")
    child = write_toml(tmp_path, f"""
        extends = {base!r}
        [[rules]]
        match = ["special.*"]
        pipeline = [{{ id = "bytegroup" }}]
    """.replace("'", '"'), name="child.toml")
    r = get_recipe(child)
    assert r.name == "child"
    assert chosen(r, "special.weight", spec()) == "bytegroup"
    assert chosen(r, "other.weight", spec()) == "raw+zstd"
    assert chosen(r, "other.bias", spec()) == "raw"


def test_toml_extends_relative_to_the_recipe_file(tmp_path, monkeypatch):
    (tmp_path / "recipes" / "shared").mkdir(parents=True)
    write_toml(tmp_path / "recipes" / "shared", """
        [[rules]]
        match = ["*.weight"]
        pipeline = [{ id = "raw" }, { id = "zstd" }]
    """, name="base.toml")
    child = write_toml(tmp_path / "recipes", 'extends = "shared/base.toml"\n', name="child.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)           # not the recipe's directory
    assert chosen(get_recipe(child), "x.weight", spec()) == "raw+zstd"
    # a dict has no file: its relative paths stay relative to the current directory
    with pytest.raises(InputError, match="cannot read recipe file shared/base.toml"):
        get_recipe({"extends": "shared/base.toml"})
    monkeypatch.chdir(tmp_path / "recipes")
    assert chosen(get_recipe({"extends": "shared/base.toml"}), "x.weight", spec()) == "raw+zstd"


def test_toml_recipe_used_by_save_file(tmp_path):
    path = write_toml(tmp_path, """
        name = "zs"
        [[rules]]
        dtypes = ["int32"]
        pipeline = [{ id = "raw" }, { id = "zstd", level = 2 }]
        [[rules]]
        pipeline = [{ id = "cast", dtype = "bfloat16" }, { id = "raw" }]
    """)
    tensors = {"i": np.arange(20, dtype=np.int32), "f": np.linspace(0, 1, 9, dtype=np.float32),
               "b": np.ones(3, bool)}
    out = tmp_path / "m.wcodec"
    wcodec.save_file(tensors, out, path)
    with wcodec.open(out) as r:
        assert r.metadata()["wcodec.recipe"] == "zs"
        assert r.info("i").pipeline == [{"id": "raw"}, {"id": "zstd", "level": 2}]
        assert r.info("f").pipeline_text == "cast+raw"
        assert r.info("b").pipeline_text == "raw"  # cast cannot take bool: fallback
        assert np.array_equal(r.get_tensor("i"), tensors["i"])
        assert np.allclose(r.get_tensor("f"), tensors["f"], rtol=2**-8, atol=0)


@pytest.mark.parametrize("text", [
    "this is not toml",
    "[[rules]\npipeline = []",
    'name = "a"\nname = "b"\n',
    "[[rules]]\npipeline = [{ id = \"raw\" }\n",
])
def test_bad_toml_syntax(text, tmp_path):
    with pytest.raises(ConfigError, match="r.toml"):
        get_recipe(write_toml(tmp_path, text))


@pytest.mark.parametrize("text,needle", [
    ('bogus = 1\n[[rules]]\npipeline = [{ id = "raw" }]\n', "bogus"),
    ('[[rules]]\npipeline = [{ id = "raw" }]\nmtach = ["*"]\n', "mtach"),
    ('[[rules]]\nmatch = ["*"]\n', "pipeline"),
    ('name = "empty"\n', "no rules"),
    ("rules = []\n", "no rules"),
    ('[[rules]]\npipeline = [{ id = "raw" }]\ndtypes = ["float8"]\n', "float8"),
    ('[[rules]]\npipeline = [{ id = "zstd" }]\n', "array->bytes"),
    ('[[rules]]\npipeline = [{ id = "bytegroup", level = 99 }]\n', "level"),
    ('[[rules]]\npipeline = [{ id = "bytegroup", lvl = 9 }]\n', "lvl"),
    ('[[rules]]\npipeline = [{ id = "cast" }, { id = "raw" }]\n', "dtype"),
    ('[[rules]]\npipeline = { id = "raw" }\n', "list"),
    ('[[rules]]\npipeline = ["raw"]\n', "id"),
    ('[[rules]]\npipeline = [{ id = "raw" }]\nmatch = 5\n', "match"),
    ('[[rules]]\npipeline = [{ id = "raw" }]\nexclude = {a = 1}\n', "exclude"),
    ('extends = "no-such-recipe"\n', "no-such-recipe"),
    ("extends = 5\n", "'extends' must be a string"),
    ("rules = 3\n", "'rules' must be a list of tables"),
    ("rules = [3]\n", "pipeline"),
])
def test_invalid_recipe_files(text, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle) as info:
        get_recipe(write_toml(tmp_path, text))
    assert "r.toml" in str(info.value)


@pytest.mark.parametrize("cid", ["nope", "huffman_v9", "RAW"])
def test_unknown_codec_in_recipe(cid, tmp_path):
    path = write_toml(tmp_path, f'[[rules]]\npipeline = [{{ id = "{cid}" }}]\n')
    with pytest.raises((ConfigError, UnknownCodec), match=repr(cid)):
        get_recipe(path)
    with pytest.raises(UnknownCodec, match=repr(cid)):
        get_recipe({"rules": [{"pipeline": [{"id": cid}]}]})


def test_missing_recipe_file(tmp_path):
    with pytest.raises(InputError):
        get_recipe(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError):
        get_recipe(str(tmp_path / "missing-no-suffix"))


def test_unreadable_recipe_path_is_a_directory(tmp_path):
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(InputError):
        get_recipe(str(d))


@pytest.mark.parametrize("obj,needle", [
    ({"rules": [{"pipeline": ZS}], "bogus": 1}, "bogus"),
    ({"rules": [{"pipeline": ZS, "min_sizee": 3}]}, "min_sizee"),
    ({"rules": [{"match": ["*"]}]}, "pipeline"),
    ({"rules": []}, "no rules"),
    ({}, "no rules"),
    ({"rules": ["x"]}, "pipeline"),
    ({"rules": [{"pipeline": [{"id": "raw"}, {"id": "raw"}]}]}, "array->bytes"),
    ({"rules": [{"pipeline": ZS, "dtypes": ["complex64"]}]}, "complex64"),
])
def test_invalid_recipe_dicts(obj, needle):
    with pytest.raises(ConfigError, match=needle):
        get_recipe(obj)
    with pytest.raises(ConfigError):
        recipe_from_dict(obj)


# Regression (bug found by this suite, now fixed): recipes._rule_from_dict does not type-check
# rule fields (min_size/min_ndim/match/exclude items/dtypes) nor recipe 'extends'/'rules': bad
# values load and fail later with TypeError inside Rule.matches, or raise TypeError (dict
# recipes) instead of ConfigError. Fix: validate each field's type when building the Rule/Recipe
@pytest.mark.parametrize("obj", [
    {"rules": [{"pipeline": ZS, "min_size": "12"}]},
    {"rules": [{"pipeline": ZS, "min_ndim": 1.5}]},
    {"rules": [{"pipeline": ZS, "match": [1]}]},
    {"rules": [{"pipeline": ZS, "exclude": [None]}]},
    {"rules": [{"pipeline": ZS, "dtypes": 5}]},
    {"rules": 3},
    {"extends": ["lossless"]},
    {"name": "x", "extends": 5},
])
def test_recipe_field_types_are_checked(obj, tmp_path):
    with pytest.raises(ConfigError):
        r = get_recipe(obj)
        r.pipeline_for("x.weight", spec())  # a bad value must not get this far
        wcodec.save_file({"x.weight": np.zeros((2, 2), np.float32)}, tmp_path / "o.wcodec", r)


# Regression (bug found by this suite, now fixed): a TOML recipe that extends itself (directly
# or through another file) recurses until RecursionError; get_recipe should detect the cycle and
# raise ConfigError
def test_extends_cycle_is_config_error(tmp_path):
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text(f'extends = "{b}"\n')
    b.write_text(f'extends = "{a}"\n')
    with pytest.raises(ConfigError, match="itself"):
        get_recipe(str(a))
    c = tmp_path / "c.toml"
    c.write_text(f'extends = "{c}"\n[[rules]]\npipeline = [{{ id = "raw" }}]\n')
    with pytest.raises(ConfigError, match="itself"):
        get_recipe(str(c))


# ---------------------------------------------------------------------------
# with_options
# ---------------------------------------------------------------------------

def test_with_options_sets_matching_codec_options():
    base = Recipe("t", [Rule([{"id": "raw"}, {"id": "zstd", "level": 3}], match=["*.a"],
                             exclude=["x*"], dtypes=["float32"], min_size=2, min_ndim=1),
                        Rule([{"id": "cast", "dtype": "float16"}, {"id": "bytegroup"}])])
    r = base.with_options(level=7, bits=4, sparsity=None)
    assert r is not base and r.name == base.name and r.description == base.description
    assert r.rules[0].pipeline == [{"id": "raw"}, {"id": "zstd", "level": 7}]
    assert r.rules[1].pipeline == [{"id": "cast", "dtype": "float16"},
                                   {"id": "bytegroup", "level": 7}]
    # filters are kept
    for a, b in zip(r.rules, base.rules):
        assert (a.match, a.exclude, a.dtypes, a.min_size, a.min_ndim) == (
            b.match, b.exclude, b.dtypes, b.min_size, b.min_ndim)
    # the original is untouched
    assert base.rules[0].pipeline == [{"id": "raw"}, {"id": "zstd", "level": 3}]
    assert base.rules[1].pipeline[1] == {"id": "bytegroup"}
    assert r.pipeline_for("q.a", spec((4,))).get_config()[1] == {"id": "zstd", "level": 7}


def test_with_options_none_and_unknown_are_ignored():
    base = RECIPES["fp16"]
    r = base.with_options(level=None, bits=3, group_size=None)
    assert [x.pipeline for x in r.rules] == [x.pipeline for x in base.rules]
    r2 = base.with_options(dtype="bfloat16")  # 'dtype' is a cast option
    assert r2.rules[0].pipeline[0] == {"id": "cast", "dtype": "bfloat16"}
    assert RECIPES["fp16"].rules[0].pipeline[0] == {"id": "cast", "dtype": "float16"}


@pytest.mark.parametrize("options", [{"level": 99}, {"level": "9"}, {"level": 2.5},
                                     {"dtype": "int8"}])
def test_with_options_bad_value_is_config_error(options):
    """A bad value is refused at with_options or, at the latest, when the recipe is used."""
    with pytest.raises(ConfigError):
        r = RECIPES["fp16"].with_options(**options)
        r.pipeline_for("w", spec())


@given(level=st.integers(1, 22))
def test_with_options_level_property(level):
    r = RECIPES["lossless"].with_options(level=level)
    assert r.pipeline_for("x", spec()).get_config() == [{"id": "bytegroup", "level": level}]
