"""The golden test vectors of spec/vectors/: every file decodes, bit for bit, to
its expected arrays, and every registered codec id that can appear in a file is
exercised by a vector. Encoder-only codecs (class attribute ``encoder_only = True``,
i.e. ``auto``) are exempt: the writer replaces them before writing, so they must
never appear in a vector.

To add or change vectors: edit ``VECTORS`` in tools/make_vectors.py and run
``python tools/make_vectors.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest

import wcodec
from wcodec.codecs import codec_class, codec_ids

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTOR_DIR = os.path.join(ROOT, "spec", "vectors")
MANIFEST = os.path.join(VECTOR_DIR, "MANIFEST.json")
REGENERATE = "run `python tools/make_vectors.py` (and commit spec/vectors/)"


def _manifest() -> dict:
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {"vectors": []}


ENTRIES = _manifest()["vectors"]


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's raw bits as unsigned integers (so NaN payloads compare)."""
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[array.dtype.itemsize]
    return array.reshape(-1).view(view)


def test_manifest_present_and_well_formed():
    if not os.path.exists(MANIFEST):
        pytest.fail(f"spec/vectors/MANIFEST.json is missing: {REGENERATE}")
    names = [e["name"] for e in ENTRIES]
    assert names, "the manifest lists no vectors"
    assert len(set(names)) == len(names), "duplicate vector names in the manifest"
    for e in ENTRIES:
        assert {"name", "file", "expected", "description", "codecs", "sha256", "metadata",
                "tensors"} <= set(e), e.get("name")


def _encoder_only(codec_id: str) -> bool:
    return bool(getattr(codec_class(codec_id), "encoder_only", False))


def test_every_codec_has_a_vector():
    covered = {cid for e in ENTRIES for cid in e["codecs"]}
    missing = sorted({c for c in codec_ids() if not _encoder_only(c)} - covered)
    if missing:
        pytest.fail(f"registered codec ids without a golden vector: {', '.join(missing)}. "
                    "Add a Vector(...) entry using them to VECTORS in tools/make_vectors.py, "
                    f"then {REGENERATE}.")


def test_encoder_only_codecs_never_in_vectors():
    """`auto` and the like are resolved by the writer: no file may name them."""
    leaked = sorted({c for e in ENTRIES for c in e["codecs"]
                     if c in codec_ids() and _encoder_only(c)})
    assert not leaked, f"vectors record encoder-only codec ids: {leaked}"


def test_no_unlisted_vector_files():
    listed = {e[k] for e in ENTRIES for k in ("file", "expected")} | {"MANIFEST.json"}
    present = {n for n in os.listdir(VECTOR_DIR) if n.endswith((".wcodec", ".npz"))} \
        if os.path.isdir(VECTOR_DIR) else set()
    extra = sorted(present - listed)
    assert not extra, f"files in spec/vectors/ the manifest does not list: {extra} ({REGENERATE})"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_vector(entry):
    path = os.path.join(VECTOR_DIR, entry["file"])
    npz_path = os.path.join(VECTOR_DIR, entry["expected"])
    for p in (path, npz_path):
        if not os.path.exists(p):
            pytest.fail(f"vector {entry['name']!r}: {os.path.relpath(p, ROOT)} is missing: "
                        f"{REGENERATE}")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == entry["sha256"], (
        f"{entry['file']} does not match its manifest sha256: {REGENERATE}")

    with np.load(npz_path, allow_pickle=False) as npz:
        expected = {k: npz[k] for k in npz.files}
    assert sorted(expected) == sorted(t["key"] for t in entry["tensors"])

    with wcodec.open(path) as reader, np.errstate(over="ignore", invalid="ignore"):
        assert reader.version[0] == 1
        assert reader.metadata() == entry["metadata"]
        assert reader.keys() == [t["name"] for t in entry["tensors"]]
        used = sorted({c["id"] for info in reader.infos() for c in info.pipeline})
        assert used == entry["codecs"], "the manifest's codec list does not match the file"
        for t in entry["tensors"]:
            info = reader.info(t["name"])
            assert info.dtype == t["dtype"] and list(info.shape) == t["shape"]
            assert re.fullmatch(r"[a-z0-9_+]*", info.pipeline_text)
            got, want = reader.get_tensor(t["name"]), expected[t["key"]]
            assert got.dtype == want.dtype, f"{t['name']!r}: dtype {got.dtype}, want {want.dtype}"
            assert got.shape == want.shape, f"{t['name']!r}: shape {got.shape}, want {want.shape}"
            bad = np.flatnonzero(_bits(got) != _bits(want))
            assert bad.size == 0, (
                f"{t['name']!r}: {bad.size} of {want.size} elements differ, first at flat index "
                f"{bad[0]}: got bits {_bits(got)[bad[0]]:#x}, want {_bits(want)[bad[0]]:#x}")
        assert reader.verify() == []


def test_format_md_example_matches_its_vector():
    """The hex dump in spec/FORMAT.md is the bytes of spec/vectors/tiny.wcodec."""
    path = os.path.join(ROOT, "spec", "FORMAT.md")
    tiny = os.path.join(VECTOR_DIR, "tiny.wcodec")
    if not (os.path.exists(path) and os.path.exists(tiny)):
        pytest.skip("no FORMAT.md or tiny vector")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    dump = re.search(r"BEGIN GENERATED: tiny\.wcodec.*?```\n(.*?)```", text, re.S)
    assert dump, "spec/FORMAT.md lost its generated example block"
    data = bytearray()
    for line in dump.group(1).splitlines():
        parts = line.split("|")[0].split()
        data += bytes(int(h, 16) for h in parts[1:])
    with open(tiny, "rb") as f:
        assert bytes(data) == f.read(), f"the FORMAT.md example is stale: {REGENERATE}"
