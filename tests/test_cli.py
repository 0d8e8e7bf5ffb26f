"""The ``wcodec`` command line, run as a real subprocess (``python -m wcodec``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

from wcodec import cli, formats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
ENV.pop("WCODEC_DEBUG", None)


def wcodec(*args, cwd, timeout=120):
    p = subprocess.run([sys.executable, "-m", "wcodec", *map(str, args)], cwd=cwd, env=ENV,
                       capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    assert "internal error" not in p.stderr, p.stderr
    return p


def tensors():
    g = torch.Generator().manual_seed(3)
    return {
        "encoder.layer.0.weight": torch.randn(32, 16, generator=g),
        "encoder.layer.0.bias": torch.randn(16, generator=g).to(torch.bfloat16),
        "encoder.norm.weight": torch.randn(16, generator=g).to(torch.float16),
        "head.weight": torch.randn(8, 16, generator=g).to(torch.bfloat16),
        "position_ids": torch.arange(12, dtype=torch.int64).reshape(1, 12),
        "mask": torch.rand(6, generator=g) > 0.5,
    }


def bits(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def assert_bit_exact(path, expect_bf16=True):
    got = {n: (a, d) for n, a, d in formats.read_weights(path)}
    want = tensors()
    assert sorted(got) == sorted(want)
    for name, t in want.items():
        a, d = got[name]
        assert a.shape == tuple(t.shape) and a.tobytes() == bits(t).tobytes(), name
        if expect_bf16 and t.dtype == torch.bfloat16:
            assert d == "bfloat16"


def listing(d):
    return sorted(os.listdir(d))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    t = tensors()
    st_torch.save_file(t, str(d / "model.safetensors"), metadata={"format": "pt", "k": "v"})
    torch.save(t, d / "model.pt")
    np.savez(d / "model.npz", **{n: bits(v) for n, v in t.items()})
    return d


@pytest.fixture(scope="module")
def packed(inputs, tmp_path_factory):
    d = tmp_path_factory.mktemp("packed")
    p = wcodec("pack", inputs / "model.safetensors", "-o", d / "model.wcodec", cwd=d)
    assert p.returncode == 0, p.stderr
    return d / "model.wcodec"


# ------------------------------------------------------------------ pack / unpack


def test_pack_summary_and_unpack_every_format(inputs, packed, tmp_path):
    meta = json.loads(wcodec("info", packed, "--json", cwd=tmp_path).stdout)["metadata"]
    assert meta == {"format": "pt", "k": "v", "wcodec.recipe": "lossless",
                    "wcodec.source": "model.safetensors"}
    for ext in (".safetensors", ".pt", ".npz"):
        out = tmp_path / ("out" + ext)
        p = wcodec("unpack", packed, "-o", out, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("unpacked 6 tensors")
        assert_bit_exact(out, expect_bf16=ext != ".npz")
    with formats.open_weights(tmp_path / "out.safetensors") as f:
        assert f.metadata == {"format": "pt", "k": "v"}
    # what the real safetensors package reads back
    back = st_torch.load_file(str(tmp_path / "out.safetensors"))
    for name, t in tensors().items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t)


def test_pack_and_verify_threads(inputs, tmp_path):
    blobs = []
    for j in ("1", "3"):
        out = tmp_path / f"j{j}.wcodec"
        p = wcodec("pack", inputs / "model.safetensors", "-o", out, "-r", "int8", "-j", j, "-q",
                   cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        blobs.append(out.read_bytes())
        p = wcodec("verify", out, "--threads", j, cwd=tmp_path)
        assert p.returncode == 0 and p.stdout.startswith("OK "), p.stderr
    assert blobs[0] == blobs[1]
    for bad in ("0", "x", "1000"):
        p = wcodec("pack", inputs / "model.safetensors", "-o", tmp_path / "bad.wcodec", "-j", bad,
                   cwd=tmp_path)
        assert p.returncode == 2 and "--threads: expected an integer from 1 to 256" in p.stderr
    assert not (tmp_path / "bad.wcodec").exists()


def test_pack_summary_line(inputs, tmp_path):
    p = wcodec("pack", inputs / "model.safetensors", "-o", tmp_path / "a.wcodec", cwd=tmp_path)
    assert p.returncode == 0
    line = p.stdout.strip()
    assert "\n" not in line
    assert line.startswith("packed 6 tensors:") and "->" in line and "x)" in line
    assert line.endswith(" s")
    p = wcodec("pack", inputs / "model.safetensors", "-o", tmp_path / "b.wcodec", "--quiet",
               cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""


def test_pack_from_pt_default_output(inputs, tmp_path):
    src = tmp_path / "model.pt"
    src.write_bytes((inputs / "model.pt").read_bytes())
    p = wcodec("pack", src, "--recipe", "raw", cwd=tmp_path)  # -o defaults to model.wcodec
    assert p.returncode == 0, p.stderr
    info = json.loads(wcodec("info", tmp_path / "model.wcodec", "--json", cwd=tmp_path).stdout)
    assert {t["pipeline_text"] for t in info["tensors"]} == {"raw"}
    assert {t["name"]: t["dtype"] for t in info["tensors"]}["head.weight"] == "bfloat16"
    p = wcodec("unpack", tmp_path / "model.wcodec", "-o", tmp_path / "back.safetensors",
               cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert_bit_exact(tmp_path / "back.safetensors")


def test_pack_from_npz_roundtrip(inputs, tmp_path):
    p = wcodec("pack", inputs / "model.npz", "-o", tmp_path / "n.wcodec", "-r", "lossless",
               cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = wcodec("unpack", tmp_path / "n.wcodec", "-o", tmp_path / "n.npz", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert_bit_exact(tmp_path / "n.npz", expect_bf16=False)


def test_pack_fp16_recipe_metadata_and_knob_warning(inputs, tmp_path):
    out = tmp_path / "h.wcodec"
    p = wcodec("pack", inputs / "model.safetensors", "-o", out, "--recipe", "fp16",
               "--metadata", "author=me", "note=a=b", "--bits", "4", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "--bits has no effect" in p.stderr
    table = wcodec("info", out, cwd=tmp_path)
    assert table.returncode == 0
    assert "cast(float16)+bytegroup" in table.stdout
    data = json.loads(wcodec("info", out, "--json", cwd=tmp_path).stdout)
    assert data["metadata"]["author"] == "me" and data["metadata"]["note"] == "a=b"
    assert data["metadata"]["wcodec.recipe"] == "fp16"
    by_name = {t["name"]: t for t in data["tensors"]}
    assert by_name["encoder.layer.0.weight"]["pipeline"][0] == {"id": "cast", "dtype": "float16"}
    assert by_name["encoder.layer.0.weight"]["dtype"] == "float32"
    p = wcodec("unpack", out, "-o", tmp_path / "h.safetensors", cwd=tmp_path)
    assert p.returncode == 0
    got = {n: a for n, a, _ in formats.read_weights(tmp_path / "h.safetensors")}
    w = tensors()["encoder.layer.0.weight"].numpy()
    np.testing.assert_allclose(got["encoder.layer.0.weight"], w, rtol=1e-3, atol=1e-4)


def test_pack_recipe_toml(inputs, tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('name = "mine"\n[[rules]]\nmatch = ["*.weight"]\n'
                      'pipeline = [{ id = "bytegroup", level = 3 }]\n')
    p = wcodec("pack", inputs / "model.safetensors", "-o", tmp_path / "r.wcodec",
               "--recipe", recipe, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    data = json.loads(wcodec("info", tmp_path / "r.wcodec", "--json", cwd=tmp_path).stdout)
    texts = {t["name"]: t["pipeline_text"] for t in data["tensors"]}
    assert texts["head.weight"] == "bytegroup(3)"
    assert texts["mask"] == "raw"
    assert data["metadata"]["wcodec.recipe"] == "mine"


# ------------------------------------------------------------------ info / verify


def test_info_table_and_json(packed, tmp_path):
    p = wcodec("info", packed, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "wcodec format 1.3" in out
    assert "wcodec.source: model.safetensors" in out
    header = next(line for line in out.splitlines() if line.startswith("name"))
    for col in ("shape", "dtype", "pipeline", "stored", "bits/w"):
        assert col in header
    assert "encoder.layer.0.weight" in out and "32x16" in out and "bfloat16" in out
    assert "total:" in out and "6 tensors" in out
    data = json.loads(wcodec("info", packed, "--json", cwd=tmp_path).stdout)
    assert data["format_version"] == "1.3"
    assert data["file_bytes"] == os.path.getsize(packed)
    assert len(data["tensors"]) == 6
    t = data["totals"]
    assert t["stored_bytes"] == sum(x["stored_bytes"] for x in data["tensors"])
    assert t["decoded_bytes"] == sum(v.numel() * v.element_size() for v in tensors().values())
    assert t["ratio"] == pytest.approx(t["decoded_bytes"] / t["stored_bytes"])
    for x in data["tensors"]:
        assert x["bits_per_weight"] == pytest.approx(8 * x["stored_bytes"] / x["numel"])
        assert isinstance(x["stats"], dict)


def test_info_shows_stats_columns():
    data = [{"stats": {"sparsity": 0.5, "zeta": 1.0}}, {"stats": {"clusters": 16.0}}]
    assert cli.stats_columns(data) == ["sparsity", "clusters", "zeta"]
    assert cli.codec_text({"id": "cast", "dtype": "float16"}) == "cast(float16)"
    assert cli.codec_text({"id": "bytegroup", "level": 19}) == "bytegroup"
    assert cli.codec_text({"id": "nosuchcodec", "a": 1, "b": 2}) == "nosuchcodec(a=1,b=2)"


def test_info_table_lists_codec_stats(tmp_path, capsys):
    import wcodec

    rng = np.random.default_rng(0)
    wcodec.save_file({"w": rng.standard_normal((64, 128)).astype(np.float32)},
                     tmp_path / "s.wcodec", recipe="deep-compression")
    assert cli.main(["info", str(tmp_path / "s.wcodec")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("name")).split()
    assert header[-5:] == ["pruned", "sparsity", "clusters", "levels", "entropy_bpw"]
    assert cli.main(["info", "--json", str(tmp_path / "s.wcodec")]) == 0
    stats = json.loads(capsys.readouterr().out)["tensors"][0]["stats"]
    assert stats["pruned"] == pytest.approx(0.9, abs=1e-3) and stats["clusters"] == 32
    assert 0 < stats["entropy_bpw"] < 2


def test_verify_ok_and_corrupted(packed, tmp_path):
    p = wcodec("verify", packed, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("OK")
    raw = bytearray(packed.read_bytes())
    raw[100] ^= 0xFF  # inside the first stream
    bad = tmp_path / "bad.wcodec"
    bad.write_bytes(bytes(raw))
    p = wcodec("verify", bad, cwd=tmp_path)
    assert p.returncode == 1
    assert "checksum" in p.stdout
    assert "verification failed" in p.stderr
    # a damaged table of contents
    raw = bytearray(packed.read_bytes())
    raw[-40] ^= 0xFF
    bad.write_bytes(bytes(raw))
    p = wcodec("verify", bad, cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.startswith("wcodec: error:") and len(p.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ errors


@pytest.fixture
def bad_files(packed, tmp_path):
    (tmp_path / "garbage.safetensors").write_bytes(os.urandom(200))
    (tmp_path / "garbage.pt").write_bytes(os.urandom(200))
    (tmp_path / "garbage.npz").write_bytes(os.urandom(200))
    (tmp_path / "garbage.wcodec").write_bytes(os.urandom(200))
    (tmp_path / "model.txt").write_text("hello")
    raw = packed.read_bytes()
    (tmp_path / "trunc.wcodec").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "good.wcodec").write_bytes(raw)
    return tmp_path


@pytest.mark.parametrize("args, code, message", [
    (["pack", "missing.safetensors", "-o", "o.wcodec"], 2, "no such file"),
    (["pack", "model.txt", "-o", "o.wcodec"], 2, "unsupported file extension"),
    (["pack", "garbage.safetensors", "-o", "o.wcodec"], 1, "garbage.safetensors"),
    (["pack", "garbage.pt", "-o", "o.wcodec"], 1, "not a PyTorch checkpoint"),
    (["pack", "garbage.npz", "-o", "o.wcodec"], 1, "not a .npz"),
    (["pack", "good.wcodec", "-o", "o.wcodec"], 2, "is a .wcodec file"),
    (["unpack", "trunc.wcodec", "-o", "o.safetensors"], 1, "trunc"),
    (["unpack", "garbage.wcodec", "-o", "o.npz"], 1, "not a wcodec file"),
    (["unpack", "good.wcodec", "-o", "o.txt"], 2, "unsupported file extension"),
    (["unpack", "missing.wcodec", "-o", "o.npz"], 2, "no such file"),
    (["unpack", "good.wcodec", "-o", "nodir/o.npz"], 2, "does not exist"),
    (["unpack", "good.wcodec"], 2, "required"),
    (["info", "trunc.wcodec"], 1, "truncated"),
    (["info", "missing.wcodec"], 2, "missing.wcodec"),
    (["verify", "garbage.wcodec"], 1, "not a wcodec file"),
    (["verify", "trunc.wcodec"], 1, "trunc"),
    ([], 2, ""),
    (["frobnicate"], 2, "invalid choice"),
])
def test_bad_inputs(bad_files, args, code, message):
    before = listing(bad_files)
    p = wcodec(*args, cwd=bad_files)
    assert p.returncode == code, (p.stdout, p.stderr)
    if message:
        assert message in p.stderr
        assert p.stderr.startswith("wcodec: error: ")
        assert len(p.stderr.strip().splitlines()) == 1
    assert listing(bad_files) == before  # no partial output, no temp files


@pytest.mark.parametrize("extra, message", [
    (["--recipe", "nosuch"], "unknown recipe"),
    (["--recipe", "bad.toml"], "bad.toml"),
    (["--metadata", "novalue"], "KEY=VALUE"),
    (["--bits", "four"], "invalid int value"),
    (["--sparsity"], "expected one argument"),
])
def test_bad_pack_options(inputs, tmp_path, extra, message):
    (tmp_path / "bad.toml").write_text("rules = 3\n[[[")
    p = wcodec("pack", inputs / "model.safetensors", "-o", tmp_path / "o.wcodec", *extra,
               cwd=tmp_path)
    assert p.returncode == 2
    assert message in p.stderr and p.stderr.startswith("wcodec: error: ")
    assert listing(tmp_path) == ["bad.toml"]


def test_help_version_and_bench(tmp_path):
    p = wcodec("unpack", "--help", cwd=tmp_path)
    assert p.returncode == 0 and "uint16" in p.stdout
    p = wcodec("--version", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("wcodec ")
    p = wcodec("bench", "--help", cwd=tmp_path, timeout=300)
    assert p.returncode == 0


def test_keyboard_interrupt_in_process(monkeypatch, inputs, tmp_path, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "pack_file", interrupted)
    code = cli.main(["pack", str(inputs / "model.safetensors"), "-o", str(tmp_path / "o.wcodec")])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err


def test_sigint_leaves_no_partial_output(tmp_path):
    rng = np.random.default_rng(0)
    big = {f"layer{i}.weight": rng.standard_normal((512, 512)).astype(np.float32)
           for i in range(48)}
    src = tmp_path / "big.safetensors"
    formats.write_safetensors(src, big)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "wcodec", "pack", str(src), "-o",
                             str(out_dir / "big.wcodec"), "--recipe", "fp16"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not os.listdir(out_dir):
        time.sleep(0.002)
    if proc.poll() is not None:
        pytest.skip("pack finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("pack finished before the signal arrived")
    if os.listdir(out_dir) == ["big.wcodec"]:
        # the signal landed after the rename (while the summary was printed): the
        # target must then be the whole file, never a part of one
        assert proc.returncode == 130 and "Traceback" not in stderr, stderr
        assert wcodec("verify", out_dir / "big.wcodec", cwd=tmp_path).returncode == 0
        return
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert os.listdir(out_dir) == []
