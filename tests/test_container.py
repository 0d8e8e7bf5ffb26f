"""The .wcodec container through the public API: save_file / load_file / open
round trips, the lazy reader, stream alignment, atomic writes, input checks and
verify()."""
from __future__ import annotations

import os
import pathlib
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given

import wcodec
from conftest import (toc_of, ALL_DTYPES, BUILTIN_RECIPES, assert_bits_equal, bfloat16_tensor, fresh_dir,
                      metadata_dicts, storage_dtype, tensor_dicts)
from wcodec import (ChecksumError, ConfigError, InputError, LimitExceeded, Pipeline, Reader,
                    WcodecError, Writer)
from wcodec.codecs import ArraySpec
from wcodec.container import format as fmt

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def expected_after(recipe: str, array: np.ndarray, dtype: str) -> np.ndarray:
    """What loading gives back for ``array`` saved with a built-in recipe,
    computed independently of wcodec (numpy for float16, torch for bfloat16)."""
    canonical = np.array(array, dtype=storage_dtype(dtype), order="C")  # (keeps 0-d)
    if recipe in ("lossless", "raw") or dtype not in ("float32", "float64"):
        return canonical
    if recipe == "fp16":
        return canonical.astype(np.float16).astype(canonical.dtype)
    assert recipe == "bf16"
    t = torch.from_numpy(canonical.reshape(-1).copy()).to(torch.bfloat16).to(torch.float32)
    return t.numpy().astype(canonical.dtype).reshape(canonical.shape)


def assert_loaded(recipe: str, got: np.ndarray, array: np.ndarray, dtype: str, what=""):
    want = expected_after(recipe, array, dtype)
    if want.dtype.kind == "f" and recipe in ("fp16", "bf16"):
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), what
        assert_bits_equal(got[~nan], want[~nan], what)
        assert got.dtype == want.dtype and got.shape == want.shape
    else:
        assert_bits_equal(got, want, what)


def file_regions(path):
    """(stream spans, toc offset, size) of a well-formed file, parsed by hand."""
    blob = pathlib.Path(path).read_bytes()
    toc_offset, toc = toc_of(blob)
    return blob, toc, toc_offset


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", BUILTIN_RECIPES)
@given(case=tensor_dicts(), metadata=metadata_dicts())
def test_save_load_roundtrip(recipe, case, metadata):
    given_tensors, canonical, kinds = case
    with fresh_dir() as d:
        path = os.path.join(d, "model.wcodec")
        wcodec.save_file(given_tensors, path, recipe=recipe, metadata=metadata)
        loaded = wcodec.load_file(path)
        assert list(loaded) == list(given_tensors)  # insertion order is kept
        for name, array in canonical.items():
            got = loaded[name]
            assert isinstance(got, np.ndarray)
            assert got.flags.c_contiguous and got.flags.writeable
            assert_loaded(recipe, got, array, kinds[name], f"{recipe} {name!r}")
        with wcodec.open(path) as reader:
            assert reader.keys() == list(given_tensors)
            assert len(reader) == len(given_tensors)
            want_meta = dict(metadata)
            want_meta["wcodec.recipe"] = recipe  # wcodec.* keys are the writer's (FORMAT.md 10)
            assert reader.metadata() == want_meta
            rec = wcodec.get_recipe(recipe)
            for name, array in canonical.items():
                info = reader.info(name)
                spec = ArraySpec(array.shape, kinds[name])
                assert name in reader
                assert info.name == name
                assert info.dtype == kinds[name]
                assert info.shape == array.shape
                assert info.numel == array.size
                assert info.nbytes == spec.nbytes
                assert info.pipeline == rec.pipeline_for(name, spec).get_config()
                assert info.pipeline_text == "+".join(c["id"] for c in info.pipeline)
                assert info.stored_bytes == sum(s.length for s in info.streams)
                assert info.bits_per_weight == (
                    pytest.approx(8 * info.stored_bytes / array.size) if array.size else 0.0)
                assert all(s.offset % fmt.ALIGN == 0 for s in info.streams)
                if recipe == "raw":
                    assert info.stored_bytes == spec.nbytes
                    assert info.pipeline == [{"id": "raw"}]
            assert reader.verify() == []


@given(case=tensor_dicts(max_tensors=3, allow_large=True))
def test_roundtrip_larger_tensors_lossless(case):
    given_tensors, canonical, kinds = case
    with fresh_dir() as d:
        path = os.path.join(d, "m.wcodec")
        wcodec.save_file(given_tensors, path)
        loaded = wcodec.load_file(path)
        for name, array in canonical.items():
            assert_bits_equal(loaded[name], array, name)


@pytest.mark.parametrize("recipe", BUILTIN_RECIPES)
def test_every_dtype_every_recipe(recipe, tmp_path, rng):
    tensors, kinds = {}, {}
    for dtype in ALL_DTYPES:
        for shape in [(), (0,), (5, 3)]:
            dt = storage_dtype(dtype)
            n = int(np.prod(shape, dtype=np.int64))
            raw = rng.integers(0, 256, n * dt.itemsize, dtype=np.uint8)
            a = (raw != 0).reshape(shape) if dtype == "bool" else raw.view(dt).reshape(shape)
            name = f"{dtype}{shape}"
            # numpy carries bfloat16 as uint16: save it as a torch tensor
            tensors[name] = bfloat16_tensor(a) if dtype == "bfloat16" else a
            kinds[name] = dtype
    path = tmp_path / "all.wcodec"
    wcodec.save_file(tensors, path, recipe)
    loaded = wcodec.load_file(path)
    with wcodec.open(path) as r:
        assert {n: r.info(n).dtype for n in r.keys()} == kinds
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor):
            value = value.view(torch.int16).numpy().view(np.uint16)
        assert_loaded(recipe, loaded[name], value, kinds[name], name)


# Regression (bug found by this suite, now fixed): cast.float32_to_bfloat16_bits computes on 0-d
# arrays as numpy scalars, so `out[nan] = ...` raises TypeError ('numpy.uint16' object does not
# support item assignment) when a 0-d float32/float64 tensor holding NaN is saved with the bf16
# recipe (fix: work on x.reshape(-1), reshape at the end)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bf16_recipe_0d_nan_tensor(dtype, tmp_path):
    wcodec.save_file({"x": np.array(np.nan, dtype), "y": np.array(1.5, dtype)},
                     tmp_path / "n.wcodec", "bf16")
    got = wcodec.load_file(tmp_path / "n.wcodec")
    assert got["x"].shape == () and np.isnan(got["x"]) and got["y"] == 1.5


def test_torch_tensors_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "w": torch.randn(4, 6, generator=g),
        "bf": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "h": torch.randn(7, generator=g).half(),
        "t": torch.randn(6, 4, generator=g).t(),  # non-contiguous
        "i": torch.arange(10, dtype=torch.int64),
        "b": torch.tensor([True, False, True]),
        "grad": torch.ones(3, requires_grad=True) * 2,
    }
    wcodec.save_file(tensors, tmp_path / "t.wcodec")
    loaded = wcodec.load_file(tmp_path / "t.wcodec")
    assert loaded["bf"].dtype == np.uint16
    assert np.array_equal(loaded["bf"], tensors["bf"].view(torch.int16).numpy().view(np.uint16))
    with wcodec.open(tmp_path / "t.wcodec") as r:
        assert r.info("bf").dtype == "bfloat16"
    for name in ("w", "h", "t", "i", "b", "grad"):
        assert np.array_equal(loaded[name], tensors[name].detach().numpy()), name


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    tensors = {
        "strided": base[::2, 1::3],
        "reversed": base[::-1, ::-1],
        "transposed": base.T,
        "fortran": np.asfortranarray(base),
        "bigendian": base.astype(">f4"),
        "be_int": np.arange(7, dtype=">i8")[::-2],
        "broadcast": np.broadcast_to(np.arange(3.0), (4, 3)),
        "readonly": np.frombuffer(base.tobytes(), dtype=np.float32),
    }
    for recipe in BUILTIN_RECIPES:
        wcodec.save_file(tensors, tmp_path / "v.wcodec", recipe)
        loaded = wcodec.load_file(tmp_path / "v.wcodec")
        for name, value in tensors.items():
            got = loaded[name]
            assert got.dtype.byteorder in ("=", "<", "|")
            assert np.array_equal(got, value), (recipe, name)


def test_unicode_names_and_metadata(tmp_path):
    names = ["ω.weight", "层.偏置", "emoji 🚀 tensor", "a/b\\c", "nul\x00inside", "quote\"'",
             "x" * 1000, " ", "\u200b"]
    tensors = {n: np.full(3, i, np.int8) for i, n in enumerate(names)}
    meta = {"κλειδί": "τιμή", "": "", "json": '{"a": [1, 2]}', "nl": "a\nb\x00"}
    wcodec.save_file(tensors, tmp_path / "u.wcodec", metadata=meta)
    with wcodec.open(tmp_path / "u.wcodec") as r:
        assert r.keys() == names
        assert {k: v for k, v in r.metadata().items() if k != "wcodec.recipe"} == meta
        for i, n in enumerate(names):
            assert r.get_tensor(n).tolist() == [i] * 3


def test_names_are_code_point_sequences(tmp_path):
    # NFC and NFD spellings of the same text are two different names (no normalisation)
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    wcodec.save_file({nfc: np.zeros(1), nfd: np.ones(1)}, tmp_path / "n.wcodec")
    loaded = wcodec.load_file(tmp_path / "n.wcodec")
    assert list(loaded) == [nfc, nfd]
    assert loaded[nfc][0] == 0 and loaded[nfd][0] == 1


def test_saving_is_deterministic(tmp_path, weights):
    for recipe in BUILTIN_RECIPES:
        wcodec.save_file(weights, tmp_path / "a.wcodec", recipe)
        wcodec.save_file(dict(weights), tmp_path / "b.wcodec", recipe)
        assert (tmp_path / "a.wcodec").read_bytes() == (tmp_path / "b.wcodec").read_bytes()


def test_empty_dict(tmp_path):
    wcodec.save_file({}, tmp_path / "e.wcodec", metadata={"k": "v"})
    assert wcodec.load_file(tmp_path / "e.wcodec") == {}
    with wcodec.open(tmp_path / "e.wcodec") as r:
        assert r.keys() == [] and r.metadata()["k"] == "v" and r.verify() == []


def test_recipe_name_is_recorded_in_metadata(tmp_path):
    # wcodec.* keys are reserved (FORMAT.md section 10): the writer sets wcodec.recipe itself
    wcodec.save_file({"a": np.zeros(2)}, tmp_path / "m.wcodec", "fp16",
                     metadata={"wcodec.recipe": "mine", "x": "y"})
    with wcodec.open(tmp_path / "m.wcodec") as r:
        assert r.metadata() == {"wcodec.recipe": "fp16", "x": "y"}


def test_recipe_objects_and_dicts_are_accepted(tmp_path, weights):
    recipe = {"name": "zs", "rules": [{"pipeline": [{"id": "raw"}, {"id": "zstd", "level": 1}]}]}
    wcodec.save_file(weights, tmp_path / "r.wcodec", recipe)
    with wcodec.open(tmp_path / "r.wcodec") as r:
        assert r.metadata()["wcodec.recipe"] == "zs"
        assert all(r.info(n).pipeline_text == "raw+zstd" for n in r.keys())
    wcodec.save_file(weights, tmp_path / "r2.wcodec", wcodec.get_recipe("fp16"))
    with wcodec.open(tmp_path / "r2.wcodec") as r:
        assert r.info("layer.0.weight").pipeline_text == "cast+bytegroup"
        assert r.info("ids").pipeline_text == "bytegroup"


# ---------------------------------------------------------------------------
# the lazy reader
# ---------------------------------------------------------------------------

def _corrupt_stream_of(path, name):
    with wcodec.open(path) as r:
        s = r.info(name).streams[0]
    assert s.length > 0
    with open(path, "r+b") as f:
        f.seek(s.offset)
        b = f.read(1)
        f.seek(s.offset)
        f.write(bytes([b[0] ^ 0x10]))


def test_get_tensor_decodes_only_that_tensor(tmp_path, weights):
    path = tmp_path / "lazy.wcodec"
    wcodec.save_file(weights, path)
    _corrupt_stream_of(path, "layer.0.bias")
    with wcodec.open(path) as r:  # opening reads only the trailer and the TOC
        assert r.keys() == list(weights)
        got = r.get_tensor("layer.0.weight")
        assert np.array_equal(got, weights["layer.0.weight"])
        assert np.array_equal(r.get_tensor("ids"), weights["ids"])
        with pytest.raises(ChecksumError, match="layer.0.bias"):
            r.get_tensor("layer.0.bias")
        problems = r.verify()
        assert len(problems) == 1 and "layer.0.bias" in problems[0]
    with pytest.raises(ChecksumError):
        wcodec.load_file(path)


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_tensors_decodes_in_parallel_in_order(tmp_path, weights, threads):
    path = tmp_path / "par.wcodec"
    wcodec.save_file(weights, path)
    names = list(weights)
    with wcodec.open(path) as r:
        got = list(r.tensors(threads=threads))
        assert [n for n, _ in got] == names
        for n, a in got:
            assert np.array_equal(a, weights[n])
        # a subset, in the caller's order, some into given buffers
        order = names[::-1]
        buf = np.empty_like(weights["layer.0.weight"])
        got = list(r.tensors(order, threads=threads, out={"layer.0.weight": buf}))
        assert [n for n, _ in got] == order
        assert dict(got)["layer.0.weight"] is buf and np.array_equal(buf, weights["layer.0.weight"])
        # no lookahead budget (one tensor at a time): still every tensor, in order
        got = list(r.tensors(threads=threads, ahead_bytes=0))
        assert [n for n, _ in got] == names and all(np.array_equal(a, weights[n]) for n, a in got)
        # stopping early leaves the reader usable
        for _ in r.tensors(threads=threads):
            break
        pairs = r.tensors(threads=threads)
        assert next(pairs)[0] == names[0]
        pairs.close()
        assert np.array_equal(r.get_tensor(names[-1]), weights[names[-1]])
    assert list(wcodec.load_file(path, threads=threads)) == names


@pytest.mark.parametrize("threads", [1, 3])
def test_parallel_decode_reports_the_bad_tensor(tmp_path, weights, threads):
    path = tmp_path / "bad.wcodec"
    wcodec.save_file(weights, path)
    _corrupt_stream_of(path, "layer.0.bias")
    with pytest.raises(ChecksumError, match="layer.0.bias"):
        wcodec.load_file(path, threads=threads)
    with wcodec.open(path) as r:
        seen = []
        with pytest.raises(ChecksumError, match="layer.0.bias"):
            for name, _ in r.tensors(threads=threads):
                seen.append(name)
        assert seen == list(weights)[:list(weights).index("layer.0.bias")]


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2", 257])
def test_bad_threads_argument(tmp_path, weights, threads):
    path = tmp_path / "t.wcodec"
    wcodec.save_file(weights, path)
    with pytest.raises(InputError, match="threads"):
        wcodec.load_file(path, threads=threads)
    with wcodec.open(path) as r, pytest.raises(InputError, match="threads"):
        r.tensors(threads=threads)  # raised on the call, before iterating


@pytest.mark.parametrize("threads", [1, 2])
def test_tensors_checks_arguments_before_decoding(tmp_path, weights, monkeypatch, threads):
    path = tmp_path / "t.wcodec"
    wcodec.save_file(weights, path)
    names = list(weights)
    decoded = []
    real = Reader.get_tensor
    monkeypatch.setattr(Reader, "get_tensor",
                        lambda self, name, out=None: decoded.append(name) or real(self, name, out))
    with wcodec.open(path) as r:
        for bad in (-1, None, 1.5):
            with pytest.raises(InputError, match="ahead_bytes"):
                r.tensors(threads=threads, ahead_bytes=bad)
        with pytest.raises(InputError, match="nope"):
            r.tensors([names[0], "nope"], threads=threads)
        with pytest.raises(InputError, match="repeated"):
            r.tensors([names[0], names[1], names[0]], threads=threads)
    assert decoded == []


def test_verify_in_parallel_reports_in_file_order(tmp_path, weights):
    path = tmp_path / "v.wcodec"
    wcodec.save_file(weights, path)
    names = list(weights)
    bad = [names[-1], names[1]]
    for name in bad:
        _corrupt_stream_of(path, name)
    with wcodec.open(path) as r:
        results = []
        for threads in (1, 3):
            seen = []
            problems = r.verify(lambda name, nbytes: seen.append(name), threads=threads)
            assert seen == names
            assert len(problems) == 2 and bad[1] in problems[0] and bad[0] in problems[1]
            results.append(problems)
        assert results[0] == results[1]
        with pytest.raises(InputError, match="threads"):
            r.verify(threads=0)


def test_tensors_decode_at_the_same_time(tmp_path, weights, monkeypatch):
    """Two threads: two decodes must be under way together (each waits for the
    other at a barrier, which times out if they run one after the other)."""
    import threading
    path = tmp_path / "t.wcodec"
    wcodec.save_file(weights, path)
    barrier = threading.Barrier(2, timeout=10)
    real = Reader.get_tensor

    def meeting(self, name, out=None):
        if name in first_two:
            barrier.wait()
        return real(self, name, out)

    first_two = list(weights)[:2]
    monkeypatch.setattr(Reader, "get_tensor", meeting)
    with wcodec.open(path) as r:
        got = dict(r.tensors(threads=2))
    assert all(np.array_equal(got[n], weights[n]) for n in weights)


def test_reader_info_and_errors(tmp_path, weights):
    path = tmp_path / "i.wcodec"
    wcodec.save_file(weights, path, "raw")
    blob = path.read_bytes()
    with wcodec.open(path) as r:
        assert isinstance(r, Reader)
        assert r.version == (fmt.VERSION_MAJOR, fmt.VERSION_MINOR)
        assert [i.name for i in r.infos()] == list(weights)
        info = r.info("layer.0.weight")
        assert info.dtype == "float32" and info.shape == (16, 24)
        assert info.pipeline == [{"id": "raw"}] and info.pipeline_text == "raw"
        assert info.stored_bytes == 16 * 24 * 4
        assert info.bits_per_weight == 32.0
        assert [s.name for s in info.streams] == ["data"]
        s = info.streams[0]
        # raw streams are the tensor's little-endian bytes, in place (memory-mappable)
        assert blob[s.offset:s.offset + s.length] == weights["layer.0.weight"].tobytes()
        assert s.crc32 == zlib.crc32(weights["layer.0.weight"].tobytes())
        assert bytes(r.read_stream("layer.0.weight", "data")) == weights["layer.0.weight"].tobytes()
        assert r.info("empty").bits_per_weight == 0.0 and r.info("empty").numel == 0
        assert r.info("step").shape == () and r.info("step").numel == 1
        assert r.pipeline("ids").describe() == "raw"
        with pytest.raises(InputError, match="nope"):
            r.info("nope")
        with pytest.raises(InputError):
            r.get_tensor("nope")
        with pytest.raises(InputError):
            r.read_stream("ids", "0.scale")
        assert "nope" not in r


def test_arrays_outlive_the_reader(tmp_path, weights):
    path = tmp_path / "c.wcodec"
    for recipe in ("raw", "lossless"):
        wcodec.save_file(weights, path, recipe)
        r = wcodec.open(path)
        got = {n: r.get_tensor(n) for n in r.keys()}
        r.close()
        r.close()  # idempotent
        for n, a in got.items():
            assert a.flags.writeable and a.flags.c_contiguous
            assert np.array_equal(a, weights[n])
        got["layer.0.weight"][0, 0] = 99.0  # writable, not a view into the file
        assert wcodec.load_file(path)["layer.0.weight"][0, 0] == weights["layer.0.weight"][0, 0]


def test_max_tensor_bytes(tmp_path):
    wcodec.save_file({"small": np.zeros(10, np.float32), "big": np.zeros(1000, np.float32)},
                     tmp_path / "l.wcodec")
    with pytest.raises(LimitExceeded, match="big"):
        wcodec.open(tmp_path / "l.wcodec", max_tensor_bytes=3999)
    with pytest.raises(LimitExceeded):
        wcodec.load_file(tmp_path / "l.wcodec", max_tensor_bytes=100)
    assert wcodec.load_file(tmp_path / "l.wcodec", max_tensor_bytes=4000)["big"].size == 1000


def test_open_missing_or_directory(tmp_path):
    with pytest.raises(InputError):
        wcodec.open(tmp_path / "missing.wcodec")
    with pytest.raises(InputError):
        wcodec.load_file(tmp_path / "missing.wcodec")
    with pytest.raises(InputError):
        wcodec.open(tmp_path)


# ---------------------------------------------------------------------------
# layout: header, alignment, trailer
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", BUILTIN_RECIPES)
def test_layout_and_alignment(recipe, tmp_path, weights):
    path = tmp_path / "a.wcodec"
    wcodec.save_file(weights, path, recipe)
    blob, toc, toc_offset = file_regions(path)
    magic, major, minor, flags, reserved = fmt.HEADER.unpack_from(blob, 0)
    assert magic == b"\x89WCODEC\n" and (major, minor) == (1, 3) and flags == 0
    assert reserved == bytes(48)
    off, length, crc, zero, end_magic = fmt.TRAILER.unpack_from(blob, len(blob) - 32)
    assert end_magic == magic and zero in fmt.TOC_ENCODINGS
    assert off + length + 32 == len(blob)
    assert crc == zlib.crc32(blob[off:off + length])
    spans = []
    for rec in toc["tensors"]:
        for s in rec["streams"]:
            # 1.2: every stream 8-aligned; a raw data stream of >= 4096 bytes 64-aligned
            zero_copy = (rec["pipeline"][-1]["id"] == "raw" and s["name"] == "data"
                         and s["length"] >= 4096)
            align = 64 if zero_copy else 8
            assert s["offset"] % align == 0, (rec["name"], s)
            assert s["offset"] >= 64
            assert zlib.crc32(blob[s["offset"]:s["offset"] + s["length"]]) == s["crc32"]
            spans.append((s["offset"], s["offset"] + s["length"], align))
    spans.sort()
    assert spans[0][0] == 64
    for (a0, a1, _), (b0, b1, align) in zip(spans, spans[1:]):
        assert a1 <= b0 and b0 - a1 < align       # no overlap, minimal padding
        assert blob[a1:b0] == bytes(b0 - a1)       # zero padding
    assert spans[-1][1] <= toc_offset


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------

class Boom(RuntimeError):
    pass


def _raising_tensors(good, bad_value):
    yield "first", good
    yield "second", bad_value
    yield "third", good


def _raising_generator(good):
    yield "first", good
    raise Boom("producer failed")


@pytest.mark.parametrize("make_bad", [
    "object_array", "string_array", "complex_array", "python_list", "cast_on_int_pipeline",
    "generator_raises", "keyboard_interrupt", "duplicate_name", "bad_name", "pipeline_raises",
])
@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_nothing_behind(make_bad, existing, tmp_path, monkeypatch):
    target = tmp_path / "out.wcodec"
    old = None
    if existing:
        wcodec.save_file({"old": np.arange(5)}, target)
        old = target.read_bytes()
    good = np.ones((4, 4), np.float32)
    expected_exc: type[BaseException] | tuple = WcodecError

    def run():
        if make_bad == "object_array":
            wcodec.save_file({"first": good, "x": np.array([1, None], dtype=object),
                              "third": good}, target)
        elif make_bad == "string_array":
            wcodec.save_file({"first": good, "x": np.array(["a", "b"])}, target)
        elif make_bad == "complex_array":
            wcodec.save_file({"first": good, "x": np.ones(3, np.complex64)}, target)
        elif make_bad == "python_list":
            wcodec.save_file({"first": good, "x": [1.0, 2.0]}, target)
        elif make_bad == "cast_on_int_pipeline":
            with Writer(target) as w:
                w.add_tensor("first", good, Pipeline([{"id": "raw"}]))
                w.add_tensor("x", np.arange(3), Pipeline([{"id": "cast", "dtype": "float16"},
                                                          {"id": "raw"}]))
        elif make_bad == "generator_raises":
            wcodec.api.write_tensors(_raising_generator(good), target)
        elif make_bad == "keyboard_interrupt":
            def progress(name, nbytes):
                raise KeyboardInterrupt
            wcodec.api.write_tensors({"first": good, "b": good}, target, progress=progress)
        elif make_bad == "duplicate_name":
            wcodec.api.write_tensors([("first", good), ("first", good)], target)
        elif make_bad == "bad_name":
            wcodec.api.write_tensors([("first", good), ("", good)], target)
        elif make_bad == "pipeline_raises":
            from wcodec.codecs import bytegroup

            calls = []

            def encode(self, value, spec, side):
                calls.append(1)
                if len(calls) == 2:
                    raise Boom("encoder crashed midway")
                return original(self, value, spec, side)
            original = bytegroup.ByteGroup.encode
            monkeypatch.setattr(bytegroup.ByteGroup, "encode", encode)
            wcodec.save_file({"first": good, "second": good, "third": good}, target)

    if make_bad in ("generator_raises", "pipeline_raises"):
        expected_exc = Boom
    elif make_bad == "keyboard_interrupt":
        expected_exc = KeyboardInterrupt
    with pytest.raises(expected_exc):
        run()
    if existing:
        assert target.read_bytes() == old  # untouched
        assert sorted(os.listdir(tmp_path)) == ["out.wcodec"]
    else:
        assert not target.exists()
        assert os.listdir(tmp_path) == []  # no temp file left


def test_writer_abort_and_close(tmp_path):
    w = Writer(tmp_path / "w.wcodec", {"a": "b"})
    w.add_tensor("x", np.arange(3), Pipeline([{"id": "raw"}]))
    w.abort()
    assert os.listdir(tmp_path) == []
    with Writer(tmp_path / "w.wcodec") as w:
        rec = w.add_tensor("x", np.arange(3, dtype=np.int16), Pipeline([{"id": "bytegroup"}]))
        assert rec["name"] == "x" and rec["dtype"] == "int16" and rec["shape"] == [3]
        assert rec["streams"][0]["offset"] % 8 == 0
    w.close()  # second close is a no-op
    assert os.listdir(tmp_path) == ["w.wcodec"]
    assert wcodec.load_file(tmp_path / "w.wcodec")["x"].tolist() == [0, 1, 2]


def test_writer_target_directory_must_exist(tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({"a": np.zeros(1)}, tmp_path / "no" / "such" / "dir.wcodec")


def test_target_is_a_directory(tmp_path):
    (tmp_path / "t.wcodec").mkdir()
    with pytest.raises((OSError, WcodecError)):
        wcodec.save_file({"a": np.zeros(3)}, tmp_path / "t.wcodec")
    assert os.listdir(tmp_path) == ["t.wcodec"] and (tmp_path / "t.wcodec").is_dir()


def test_written_file_permissions_follow_umask(tmp_path):
    wcodec.save_file({"a": np.zeros(1)}, tmp_path / "p.wcodec")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.wcodec").stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------

def test_duplicate_names_rejected(tmp_path):
    with Writer(tmp_path / "d.wcodec") as w:
        w.add_tensor("x", np.zeros(2), Pipeline([{"id": "raw"}]))
        with pytest.raises(InputError, match="duplicate"):
            w.add_tensor("x", np.zeros(2), Pipeline([{"id": "raw"}]))
    assert wcodec.load_file(tmp_path / "d.wcodec").keys() == {"x"}
    with pytest.raises(InputError, match="duplicate"):
        wcodec.api.write_tensors([("a", np.zeros(1)), ("b", np.zeros(1)), ("a", np.ones(1))],
                                 tmp_path / "d2.wcodec")
    assert not (tmp_path / "d2.wcodec").exists()


@pytest.mark.parametrize("metadata", [
    {"k": 1}, {"k": None}, {"k": b"bytes"}, {1: "v"}, {("t",): "v"}, {"k": ["v"]},
])
def test_bad_metadata_rejected(metadata, tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({"a": np.zeros(1)}, tmp_path / "m.wcodec", metadata=metadata)
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError):
        Writer(tmp_path / "m.wcodec", metadata)
    assert os.listdir(tmp_path) == []


# Regression (bug found by this suite, now fixed): api.write_tensors does meta.update(metadata)
# before any check, so a non-mapping metadata raises TypeError/ValueError, not InputError (fix:
# check isinstance(metadata, Mapping) and raise InputError)
@pytest.mark.parametrize("metadata", [[1, 2], "ab", 5, [("k", "v", "x")]])
def test_non_mapping_metadata_rejected(metadata, tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({"a": np.zeros(1)}, tmp_path / "m.wcodec", metadata=metadata)


@pytest.mark.parametrize("tensors", [[("a", np.zeros(1))], None, "abc", np.zeros(3)])
def test_save_file_needs_a_dict(tensors, tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file(tensors, tmp_path / "x.wcodec")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value", [
    np.array([1, None], dtype=object), np.array(["a"]), np.ones(2, np.complex128), [1, 2],
    3.0, "text", None, np.datetime64("2020-01-01"), np.ones(2, np.float128),
])
def test_unsupported_values_rejected(value, tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({"a": value}, tmp_path / "x.wcodec")
    assert os.listdir(tmp_path) == []


def test_unsupported_torch_dtype_rejected(tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({"c": torch.ones(2, dtype=torch.complex64)}, tmp_path / "x.wcodec")
    assert os.listdir(tmp_path) == []


def test_too_many_dimensions_rejected(tmp_path):
    a = np.zeros((1,) * 33, np.uint8)
    with pytest.raises(InputError, match="dimensions"):
        wcodec.save_file({"a": a}, tmp_path / "x.wcodec")
    b = np.zeros((1,) * 32, np.uint8)
    wcodec.save_file({"b": b}, tmp_path / "y.wcodec")
    assert wcodec.load_file(tmp_path / "y.wcodec")["b"].shape == (1,) * 32


def test_name_too_long_rejected(tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({"é" * 40000: np.zeros(1)}, tmp_path / "x.wcodec")  # 80000 bytes
    assert os.listdir(tmp_path) == []


# Regression (bug found by this suite, now fixed): api.write_tensors matches the name against
# recipe globs before Writer.add_tensor checks it: a non-str name raises TypeError from fnmatch
# instead of InputError (fix: check names in write_tensors first)
@pytest.mark.parametrize("name", [1, None, b"bytes", ("t",)])
def test_non_string_names_rejected(name, tmp_path):
    with pytest.raises(InputError):
        wcodec.save_file({name: np.zeros(1)}, tmp_path / "x.wcodec")


@pytest.mark.parametrize("where", ["name", "metadata"])
def test_lone_surrogates_rejected_or_roundtrip(where, tmp_path):
    name, meta = ("bad\ud800name", {}) if where == "name" else ("ok", {"k": "v\udfff"})
    path = tmp_path / "s.wcodec"
    try:
        wcodec.save_file({name: np.zeros(2)}, path, metadata=meta)
    except InputError:
        assert os.listdir(tmp_path) == []
        return
    with wcodec.open(path) as r:  # if it was written, it must be readable
        assert r.keys() == [name]
        assert r.get_tensor(name).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------
# verify()
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", BUILTIN_RECIPES)
def test_verify_good_file_and_flipped_padding(recipe, tmp_path, weights):
    path = tmp_path / "v.wcodec"
    wcodec.save_file(weights, path, recipe)
    with wcodec.open(path) as r:
        assert r.verify() == []
    blob, toc, toc_offset = file_regions(path)
    spans = sorted((s["offset"], s["offset"] + s["length"])
                   for rec in toc["tensors"] for s in rec["streams"])
    gaps = [(a1, b0) for (_, a1), (b0, _) in zip(spans, spans[1:]) if b0 > a1]
    assert gaps, "the fixture should leave padding between streams"
    for start, end in (gaps[0], gaps[-1]):
        for pos in (start, end - 1):
            corrupted = bytearray(blob)
            corrupted[pos] ^= 0x01
            path.write_bytes(bytes(corrupted))
            with wcodec.open(path) as r:
                problems = r.verify()
                assert len(problems) == 1 and "padding" in problems[0], problems
                assert str(start) in problems[0]
                # the tensors themselves still decode exactly
                for name in weights:
                    assert_loaded(recipe, r.get_tensor(name), np.asarray(weights[name]),
                                  r.info(name).dtype, name)


def test_verify_reports_a_damaged_stream(tmp_path, weights):
    path = tmp_path / "v.wcodec"
    wcodec.save_file(weights, path)
    _corrupt_stream_of(path, "ids")
    with wcodec.open(path) as r:
        problems = r.verify()
    assert len(problems) == 1 and "ids" in problems[0] and "checksum" in problems[0]


def test_stream_alignment_rule(tmp_path):
    """Format 1.2 writer: a raw data stream of >= 4096 bytes on a 64-byte boundary,
    every other stream on the next 8-byte one."""
    path = tmp_path / "a.wcodec"
    tensors = {"small": np.arange(3, dtype=np.float32),        # 12 bytes raw
               "big": np.arange(1024, dtype=np.float32),       # 4096 bytes raw
               "coded": np.arange(1000, dtype=np.int32) % 7,   # huffman-coded
               "after": np.arange(5, dtype=np.uint8)}
    with Writer(path) as w:
        for name in ("small", "big", "coded", "after"):
            w.add_tensor(name, tensors[name], Pipeline(
                [{"id": "huffman"}] if name == "coded" else [{"id": "raw"}]))
    with wcodec.open(path) as f:
        offsets = {name: f.info(name).streams[0].offset for name in tensors}
        ends = {name: offsets[name] + f.info(name).streams[0].length for name in tensors}
    assert offsets["small"] == 64 and ends["small"] == 76
    assert offsets["big"] == 128                       # next 64-byte boundary
    assert offsets["coded"] == ends["big"]             # 8-aligned already
    assert offsets["after"] == fmt.align_up(ends["coded"], 8)
    got = wcodec.load_file(path)
    for name, x in tensors.items():
        assert_bits_equal(got[name], x, name)


def test_stats_are_written_to_six_digits(tmp_path):
    path = tmp_path / "s.wcodec"
    x = np.random.default_rng(0).standard_normal(1001).astype(np.float32)
    with Writer(path) as w:
        rec = w.add_tensor("w", x, Pipeline([{"id": "prune", "sparsity": 0.3}, {"id": "raw"}]))
    pruned = rec["stats"]["pruned"]
    assert pruned == float(f"{pruned:.6g}") and pruned == pytest.approx(300 / 1001, rel=1e-5)
    assert all(v == float(f"{v:.6g}") or v.is_integer() for v in rec["stats"].values())


def test_header_struct_sizes():
    assert fmt.HEADER.size == 64 and fmt.TRAILER.size == 32
    assert fmt.ALIGN == 8 and fmt.RAW_ALIGN == 64 and fmt.RAW_ALIGN_FROM == 4096
    assert struct.calcsize("<QQII8s") == 32
    assert fmt.align_up(0) == 0 and fmt.align_up(1) == 8 and fmt.align_up(8) == 8
    assert fmt.align_up(1, 64) == 64 and fmt.align_up(64, 64) == 64


def test_config_error_from_bad_recipe_leaves_nothing(tmp_path):
    with pytest.raises((ConfigError, wcodec.UnknownCodec)):
        wcodec.save_file({"a": np.zeros(2)}, tmp_path / "x.wcodec",
                         {"rules": [{"pipeline": [{"id": "nope"}]}]})
    with pytest.raises(ConfigError):
        wcodec.save_file({"a": np.zeros(2)}, tmp_path / "x.wcodec", "no-such-recipe")
    assert os.listdir(tmp_path) == []


# Regression (found in review): explicit dtypes never convert values; bool bytes
# are normalised; an empty stream overlaps nothing.
def test_explicit_dtype_must_match_the_array(tmp_path):
    from wcodec import InputError, Writer
    from wcodec.pipeline import Pipeline
    with Writer(tmp_path / "x.wcodec") as w:
        with pytest.raises(InputError):
            w.add_tensor("x", np.array([1.7, -300.2]), Pipeline([{"id": "raw"}]), dtype="int8")
        w.add_tensor("bf", np.array([0x3F80], np.uint16), Pipeline([{"id": "raw"}]),
                     dtype="bfloat16")


@pytest.mark.parametrize("coder", ["raw", "bitpack", "huffman", "zerorun", "linerice", "sparse", "bytegroup"])
def test_bool_bytes_are_normalised(tmp_path, coder):
    b = np.frombuffer(bytes([0, 1, 2, 0, 3]), np.bool_)
    path = tmp_path / "b.wcodec"
    wcodec.save_file({"b": b}, path, recipe={"rules": [{"pipeline": [{"id": coder}]}]})
    blob, toc, _ = file_regions(path)
    got = wcodec.load_file(path)["b"]
    assert got.view(np.uint8).tolist() == [0, 1, 1, 0, 1]


def test_empty_stream_inside_another_is_not_an_overlap(tmp_path):
    import zlib
    path = tmp_path / "e.wcodec"
    wcodec.save_file({"a": np.arange(100, dtype=np.float32), "e": np.zeros(0, np.float32)},
                     path, recipe="raw")
    blob = bytearray(path.read_bytes())
    off, length, _, enc, magic = fmt.TRAILER.unpack_from(blob, len(blob) - 32)
    assert enc == fmt.TOC_JSON
    toc = blob[off:off + length].replace(b'"name":"e","dtype":"float32","shape":[0],'
                                         b'"pipeline":[{"id":"raw"}],"streams":[{"name":"data",'
                                         b'"offset":512', b'"name":"e","dtype":"float32",'
                                         b'"shape":[0],"pipeline":[{"id":"raw"}],"streams":'
                                         b'[{"name":"data","offset":128')
    assert len(toc) == length
    blob[off:off + length] = toc
    blob[-32:] = fmt.TRAILER.pack(off, length, zlib.crc32(toc), enc, magic)
    path.write_bytes(bytes(blob))
    assert wcodec.load_file(path)["e"].shape == (0,)


def test_wrong_arguments_raise_wcodec_errors(tmp_path, weights):
    """Found by fuzzing the public API: each of these raised a plain TypeError
    or ValueError before."""
    from wcodec import WcodecError
    path = tmp_path / "a.wcodec"
    wcodec.save_file(weights, path)
    for bad in (None, 12345, 1.5):
        with pytest.raises(InputError, match="file path"):
            wcodec.open(bad)
    for bad in ("x", -1, True, None):
        with pytest.raises(InputError, match="max_tensor_bytes"):
            wcodec.open(path, max_tensor_bytes=bad)
    with wcodec.open(path) as r:
        assert ["a"] not in r and 3 not in r
        for call in (r.info, r.get_tensor):
            with pytest.raises(InputError, match="strings"):
                call(["a"])
        for bad in (5, "layer.0.weight", b"ab"):
            with pytest.raises(InputError, match="names"):
                r.tensors(bad)
        with pytest.raises(InputError, match="progress"):
            r.verify(progress=3)
    pipe = Pipeline([{"id": "raw"}])
    spec = ArraySpec((3,), "uint8")
    for data in (None, "abc", 5):
        with pytest.raises(InputError, match="bytes-like"):
            pipe.decode(data, {}, spec)
    assert pipe.decode(b"\x01\x02\x03", None, spec).tolist() == [1, 2, 3]
    with pytest.raises(InputError, match="streams"):
        pipe.decode(b"\x01\x02\x03", [1], spec)
    for out in (np.zeros(2), np.zeros(3, np.uint8)[::-1], np.zeros(3, np.int8), [0, 0, 0]):
        with pytest.raises(InputError, match="out must be"):
            pipe.decode(b"\x01\x02\x03", {}, spec, out=out)
    for shape, dtype in (((3.0,), "uint8"), ((-1,), "uint8"), ((True,), "uint8"), ("3", "uint8"),
                         ((3,), "float8"), ((3,), None)):
        with pytest.raises(WcodecError):
            ArraySpec(shape, dtype)
    assert ArraySpec((np.int64(3),), "uint8").shape == (3,)
