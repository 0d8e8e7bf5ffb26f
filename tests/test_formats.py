"""wcodec.formats: the pickle-free readers/writers of .safetensors, .npz and
PyTorch state dicts, checked against the real safetensors / torch packages."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wcodec import formats
from wcodec.errors import FormatError, InputError, WcodecError

torch = pytest.importorskip("torch")
st_numpy = pytest.importorskip("safetensors.numpy")
st_torch = pytest.importorskip("safetensors.torch")

NUMPY_DTYPES = ["float64", "float32", "float16", "int64", "int32", "int16", "int8",
                "uint64", "uint32", "uint16", "uint8", "bool"]


def random_array(rng, dtype, shape):
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def numpy_tensors(rng):
    out = {f"t_{d}": random_array(rng, d, (3, 5)) for d in NUMPY_DTYPES}
    out["scalar"] = np.array(3.5, dtype=np.float32)
    out["empty"] = np.zeros((0, 4), dtype=np.float16)
    out["odd.int8"] = random_array(rng, "int8", (7,))  # misaligns what follows if not sorted
    return out


def torch_tensors():
    g = torch.Generator().manual_seed(7)
    return {
        "layer.0.weight": torch.randn(8, 6, generator=g),
        "layer.0.bias": torch.randn(6, generator=g).to(torch.bfloat16),
        "emb": torch.randn(4, 3, generator=g).to(torch.float16),
        "steps": torch.arange(5, dtype=torch.int64),
        "mask": torch.rand(3, generator=g) > 0.5,
        "u8": torch.randint(0, 255, (4,), dtype=torch.uint8, generator=g),
    }


def bits(t):
    """A numpy view of a torch tensor's bits (bf16 as uint16)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def assert_same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.tobytes() == b.tobytes()


def no_temp_files(directory):
    return [f for f in os.listdir(directory) if f.endswith(".tmp")] == []


# ------------------------------------------------------------------ safetensors


def test_safetensors_reader_matches_package_numpy(tmp_path, rng):
    tensors = numpy_tensors(rng)
    path = tmp_path / "a.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"format": "np", "k": "v"})
    with formats.open_weights(path) as f:
        assert isinstance(f, formats.SafetensorsFile)
        assert f.metadata == {"format": "np", "k": "v"}
        assert sorted(f.keys()) == sorted(tensors)
        assert f.total_bytes == sum(a.nbytes for a in tensors.values())
        seen = {}
        for name, array, dtype in f:
            assert dtype == formats.SAFETENSORS_DTYPES[
                {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64",
                 "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64",
                 "uint32": "U32", "uint16": "U16", "uint8": "U8",
                 "bool": "BOOL"}[tensors[name].dtype.name]]
            seen[name] = np.array(array)
    for name, array in tensors.items():
        assert_same(seen[name], array)


def test_safetensors_reader_bf16_from_torch(tmp_path):
    tensors = torch_tensors()
    path = tmp_path / "t.safetensors"
    st_torch.save_file(tensors, str(path))
    got = {name: (a, d) for name, a, d in formats.read_weights(path)}
    assert got["layer.0.bias"][1] == "bfloat16"
    assert got["layer.0.bias"][0].dtype == np.uint16
    for name, t in tensors.items():
        assert_same(got[name][0], bits(t))


def test_safetensors_reader_is_lazy_mmap_views(tmp_path, rng):
    path = tmp_path / "a.safetensors"
    st_numpy.save_file({"x": rng.standard_normal((64, 64)).astype(np.float32)}, str(path))
    f = formats.SafetensorsFile(path)
    array, _ = f.get("x")
    assert not array.flags.owndata and not array.flags.writeable  # a view into the mmap
    f.close()  # arrays handed out stay valid
    assert np.isfinite(array).all()


def test_safetensors_writer_read_by_package(tmp_path, rng):
    tensors = torch_tensors()
    path = tmp_path / "w.safetensors"
    items = []
    for name, t in tensors.items():
        dtype = "bfloat16" if t.dtype == torch.bfloat16 else None
        items.append((name, bits(t), dtype or formats.dtypes.name_of(t.numpy())))
    formats.write_safetensors(path, items, {"format": "pt", "note": "héllo"})
    loaded = st_torch.load_file(str(path))
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype
        assert torch.equal(loaded[name], t)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"format": "pt", "note": "héllo"}
    # and our reader keeps the given order and every bit
    with formats.open_weights(path) as f:
        assert f.keys() == list(tensors)


def test_safetensors_writer_numpy_all_dtypes(tmp_path, rng):
    tensors = numpy_tensors(rng)
    path = tmp_path / "n.safetensors"
    formats.save_weights(path, tensors)
    loaded = st_numpy.load_file(str(path))
    for name, a in tensors.items():
        assert_same(loaded[name], a)
    # data of every tensor is aligned to its item size
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    for name, entry in header.items():
        if name != "__metadata__":
            size = np.dtype(tensors[name].dtype).itemsize
            assert entry["data_offsets"][0] % size == 0


def _raw_safetensors(header: dict, data: bytes, pad=True) -> bytes:
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize("blob, error", [
    (b"", FormatError),
    (b"\x01\x02", FormatError),
    (struct.pack("<Q", 1 << 60) + b"{}", FormatError),
    (struct.pack("<Q", 100) + b"{}", FormatError),
    (struct.pack("<Q", 4) + b"{]  ", FormatError),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", FormatError),
    (_raw_safetensors([1, 2], b""), FormatError),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"1234"),
     FormatError),  # truncated data
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)),
     FormatError),  # size mismatch
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8)),
     FormatError),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, bytes(8)),
     FormatError),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8)),
     FormatError),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}},
                      bytes(8)), FormatError),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [2]}}, bytes(8)), FormatError),
    (_raw_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "I32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)),
     FormatError),  # overlap
    (_raw_safetensors({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}},
                      bytes(2)), InputError),
    (_raw_safetensors({"a": {"dtype": 5, "shape": [2], "data_offsets": [0, 2]}}, bytes(2)),
     FormatError),
    (_raw_safetensors({"__metadata__": {"k": 1}}, b""), FormatError),
    (struct.pack("<Q", 40) + b'{"a":1,"a":2}' + b" " * 27, FormatError),  # duplicate key
])
def test_safetensors_bad_files(tmp_path, blob, error):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(error):
        with formats.open_weights(path) as f:
            for _ in f:
                pass


def test_safetensors_good_raw_file(tmp_path):
    path = tmp_path / "ok.safetensors"
    path.write_bytes(_raw_safetensors(GOOD, np.array([1.5, -2], "<f4").tobytes()))
    assert [(n, a.tolist(), d) for n, a, d in formats.read_weights(path)] == [
        ("a", [1.5, -2.0], "float32")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_safetensors_mutations_raise_only_wcodec_errors(tmp_path, data):
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(3, dtype=np.int8)}
    path = tmp_path / "base.safetensors"
    formats.write_safetensors(path, tensors, {"m": "x"})
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    bad = tmp_path / "mut.safetensors"
    bad.write_bytes(bytes(blob))
    try:
        with formats.open_weights(bad) as f:
            for name, array, dtype in f:
                assert array.nbytes == formats.dtypes.get(dtype).itemsize * array.size
    except WcodecError:
        pass


# ------------------------------------------------------------------ npz


def test_npz_roundtrip_and_np_load(tmp_path, rng):
    tensors = numpy_tensors(rng)
    path = tmp_path / "a.npz"
    formats.save_weights(path, tensors)
    with np.load(path, allow_pickle=False) as z:
        for name, a in tensors.items():
            assert_same(z[name], a)
    got = {n: (a, d) for n, a, d in formats.read_weights(path)}
    for name, a in tensors.items():
        assert_same(got[name][0], a)
        assert got[name][1] == formats.dtypes.name_of(a)


def test_npz_reads_compressed_and_savez(tmp_path, rng):
    a = rng.standard_normal((5, 5)).astype(np.float32)
    np.savez_compressed(tmp_path / "c.npz", x=a, y=np.arange(3))
    got = {n: a for n, a, _ in formats.read_weights(tmp_path / "c.npz")}
    assert_same(got["x"], a)
    assert_same(got["y"], np.arange(3))


def test_npz_bad_files(tmp_path):
    p = tmp_path / "garbage.npz"
    p.write_bytes(os.urandom(100))
    with pytest.raises(FormatError):
        formats.open_weights(p)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="object"):
        list(formats.read_weights(tmp_path / "obj.npz"))
    np.savez(tmp_path / "cplx.npz", x=np.ones(2, np.complex64))
    with pytest.raises(InputError, match="complex"):
        list(formats.read_weights(tmp_path / "cplx.npz"))
    np.savez(tmp_path / "ok.npz", x=np.arange(1000))
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(FormatError):
        list(formats.read_weights(tmp_path / "trunc.npz"))


# ------------------------------------------------------------------ torch


@pytest.mark.parametrize("ext", [".pt", ".pth", ".bin"])
def test_torch_roundtrip(tmp_path, ext):
    tensors = torch_tensors()
    path = tmp_path / ("m" + ext)
    torch.save(tensors, path)
    got = {n: (a, d) for n, a, d in formats.read_weights(path)}
    assert list(got) == list(tensors)
    assert got["layer.0.bias"][1] == "bfloat16"
    for name, t in tensors.items():
        assert_same(got[name][0], bits(t))
    out = tmp_path / ("out" + ext)
    formats.save_weights(out, [(n, a, d) for n, (a, d) in got.items()])
    back = torch.load(out, weights_only=True)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t)


def test_torch_legacy_and_noncontiguous(tmp_path):
    t = torch.randn(4, 6)
    torch.save({"t": t.t(), "s": t[:, ::2]}, tmp_path / "legacy.pt",
               _use_new_zipfile_serialization=False)
    got = {n: a for n, a, _ in formats.read_weights(tmp_path / "legacy.pt")}
    assert_same(got["t"], t.t().contiguous().numpy())
    assert_same(got["s"], t[:, ::2].contiguous().numpy())


def test_torch_bad_files(tmp_path):
    import argparse

    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(InputError, match="state dict"):
        formats.open_weights(tmp_path / "list.pt")
    torch.save({"a": torch.zeros(2), "step": 3}, tmp_path / "int.pt")
    with pytest.raises(InputError, match="'step' is a int"):
        formats.open_weights(tmp_path / "int.pt")
    torch.save({"a": argparse.Namespace(x=1)}, tmp_path / "obj.pt")
    with pytest.raises(InputError, match="will not unpickle"):
        formats.open_weights(tmp_path / "obj.pt")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(1000))
    with pytest.raises(FormatError):
        formats.open_weights(tmp_path / "garbage.pt")
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x02" + os.urandom(100))
    with pytest.raises(WcodecError):
        formats.open_weights(tmp_path / "pickle.pt")
    torch.save({"a": torch.zeros(100)}, tmp_path / "ok.pt")
    raw = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[:300])
    with pytest.raises(FormatError):
        formats.open_weights(tmp_path / "trunc.pt")
    torch.save({"c": torch.ones(2, dtype=torch.complex64)}, tmp_path / "cplx.pt")
    with pytest.raises(InputError, match="'c'"):
        list(formats.read_weights(tmp_path / "cplx.pt"))
    torch.save({"s": torch.eye(3).to_sparse()}, tmp_path / "sparse.pt")
    with pytest.raises(InputError, match="dense"):
        formats.open_weights(tmp_path / "sparse.pt")


# ------------------------------------------------------------------ dispatch, atomicity


def test_format_of_and_missing(tmp_path):
    assert formats.format_of("x.SAFETENSORS") == "safetensors"
    assert formats.format_of("a/b.pth") == "torch"
    with pytest.raises(InputError, match=r"\.safetensors.*\.npz"):
        formats.format_of("model.gguf")
    with pytest.raises(InputError):
        formats.format_of("model.wcodec")
    with pytest.raises(InputError, match="no such file"):
        formats.open_weights(tmp_path / "nope.safetensors")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(InputError, match="directory"):
        formats.open_weights(tmp_path / "d.npz")
    with pytest.raises(InputError, match="does not exist"):
        formats.save_weights(tmp_path / "no" / "x.npz", {"a": np.zeros(2)})


@pytest.mark.parametrize("ext", [".safetensors", ".npz", ".pt"])
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_writers_are_atomic(tmp_path, ext, exc):
    path = tmp_path / ("out" + ext)
    path.write_bytes(b"previous")

    def boom():
        raise exc("stop")

    sources = [formats.TensorSource("a", (2,), "float32", lambda: np.zeros(2, np.float32)),
               formats.TensorSource("b", (2,), "float32", boom)]
    with pytest.raises(exc):
        formats.save_weights(path, sources)
    assert path.read_bytes() == b"previous"
    assert no_temp_files(tmp_path)


def test_writer_rejects_wrong_shape(tmp_path):
    src = formats.TensorSource("a", (3,), "float32", lambda: np.zeros(2, np.float32))
    with pytest.raises(InputError, match="expected"):
        formats.write_safetensors(tmp_path / "x.safetensors", [src])
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ pack / unpack


@pytest.mark.parametrize("ext", [".safetensors", ".pt", ".npz"])
@pytest.mark.parametrize("out_ext", [".safetensors", ".pt", ".npz"])
def test_pack_unpack_lossless(tmp_path, ext, out_ext):
    tensors = torch_tensors()
    src = tmp_path / ("in" + ext)
    if ext == ".safetensors":
        st_torch.save_file(tensors, str(src), metadata={"format": "pt"})
    elif ext == ".pt":
        torch.save(tensors, src)
    else:
        np.savez(src, **{n: bits(t) for n, t in tensors.items()})
    seen = []
    result = formats.pack_file(src, tmp_path / "m.wcodec", "lossless", {"who": "me"},
                               progress=lambda n, b: seen.append((n, b)))
    assert result.tensors == len(tensors) == len(seen)
    assert result.decoded_bytes == sum(b for _, b in seen)
    import wcodec

    with wcodec.open(tmp_path / "m.wcodec") as r:
        meta = r.metadata()
        assert meta["wcodec.source"] == src.name
        assert meta["wcodec.recipe"] == "lossless"
        assert meta["who"] == "me"
        assert (meta.get("format") == "pt") == (ext == ".safetensors")
        if ext != ".npz":
            assert r.info("layer.0.bias").dtype == "bfloat16"
    out = tmp_path / ("out" + out_ext)
    formats.unpack_file(tmp_path / "m.wcodec", out)
    back = {n: (a, d) for n, a, d in formats.read_weights(out)}
    for name, t in tensors.items():
        assert_same(back[name][0], bits(t))
        if ext != ".npz" and out_ext != ".npz":
            assert back[name][1] == ("bfloat16" if t.dtype == torch.bfloat16
                                     else formats.dtypes.name_of(t.numpy()))
    if out_ext == ".safetensors":
        with formats.open_weights(out) as f:
            expect = {"who": "me"} | ({"format": "pt"} if ext == ".safetensors" else {})
            assert f.metadata == expect


def test_pack_options_and_errors(tmp_path, rng):
    src = tmp_path / "in.safetensors"
    formats.write_safetensors(src, {"w": rng.standard_normal((16, 16)).astype(np.float32)})
    r = formats.pack_file(src, tmp_path / "h.wcodec", "fp16")
    assert r.output_bytes < r.input_bytes
    with pytest.raises(WcodecError):
        formats.pack_file(src, tmp_path / "x.wcodec", "no-such-recipe")
    with pytest.raises(InputError, match="is the input"):
        formats.pack_file(src, src, "lossless")
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(os.urandom(64))
    with pytest.raises(FormatError):
        formats.pack_file(garbage, tmp_path / "g.wcodec")
    assert not (tmp_path / "g.wcodec").exists() and not (tmp_path / "x.wcodec").exists()
    assert no_temp_files(tmp_path)
