"""wcodec.parallel.ordered_map and the files written with several threads."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wcodec
from wcodec import InputError
from wcodec.api import write_tensors
from wcodec.container.writer import EncodedTensor, Writer, encode_tensor
from wcodec.parallel import check_threads, default_threads, ordered_map
from wcodec.pipeline import Pipeline


@settings(max_examples=30, deadline=None)
@given(items=st.lists(st.integers(0, 50), max_size=40), threads=st.integers(1, 4),
       ahead=st.integers(0, 100))
def test_results_come_in_input_order(items, threads, ahead):
    def slow_double(x):
        time.sleep((x % 3) * 0.0005)  # later items often finish first
        return 2 * x

    got = list(ordered_map(slow_double, items, threads, cost=lambda x: x, ahead_bytes=ahead))
    assert got == [2 * x for x in items]


@pytest.mark.parametrize("threads, ahead, running", [(2, 0, 1), (3, 5, 1), (2, 35, 3)])
def test_input_is_drawn_only_as_far_as_the_budget(threads, ahead, running):
    """Each item costs 10: besides the item being yielded, ``running`` =
    max(1, ahead // 10) items are started and one more is drawn, waiting."""
    most = 1 + running + 1
    drawn = []

    def items():
        for i in range(50):
            drawn.append(i)
            yield i

    for i, result in enumerate(ordered_map(lambda x: x, items(), threads, cost=lambda x: 10,
                                           ahead_bytes=ahead)):
        assert result == i
        assert len(drawn) <= i + most


def test_an_error_comes_in_its_turn_and_stops_the_rest():
    started = []
    lock = threading.Lock()

    def work(x):
        with lock:
            started.append(x)
        if x == 5:
            raise ValueError("bad item 5")
        return x

    out = []
    with pytest.raises(ValueError, match="bad item 5"):
        for r in ordered_map(work, range(1000), 2, cost=lambda x: 1, ahead_bytes=4):
            out.append(r)
    assert out == [0, 1, 2, 3, 4]
    assert max(started) < 20  # the other 980 never started


@pytest.mark.parametrize("threads", [1, 3])
def test_input_errors_come_in_their_turn(threads):
    """A failing item, a failing input iterator and a failing cost all raise
    only after every earlier result was yielded, as with one thread."""
    def items():
        yield from range(4)
        raise OSError("input broke at 4")

    out = []
    with pytest.raises(OSError, match="input broke"):
        for r in ordered_map(lambda x: x, items(), threads, cost=lambda x: 1):
            out.append(r)
    assert out == [0, 1, 2, 3]

    def work(x):
        if x == 2:
            raise ValueError("fn failed at 2")
        return x

    out = []
    with pytest.raises(ValueError, match="fn failed at 2"):
        for r in ordered_map(work, range(10), threads, cost=lambda x: 1 // (x - 5)):
            out.append(r)  # cost fails at 5, after fn's error at 2
    assert out == [0, 1]


def test_stopping_early_drops_what_has_not_started():
    started = []
    gen = ordered_map(lambda x: started.append(x) or x, range(1000), 2, cost=lambda x: 1,
                      ahead_bytes=2)
    assert next(gen) == 0
    gen.close()
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count < 10


def test_one_thread_is_plain_map_on_the_calling_thread():
    names = list(ordered_map(lambda x: threading.current_thread().name, range(3), 1))
    assert names == [threading.current_thread().name] * 3


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "2", 257])
def test_bad_thread_counts(bad):
    with pytest.raises(InputError, match="threads"):
        check_threads(bad)
    assert 1 <= default_threads() <= 4 and check_threads(None) == default_threads()


@pytest.mark.parametrize("recipe", ["lossless", "fp16", "int8", "int4", "auto", "deep-compression",
                                    "weightless"])
def test_files_do_not_depend_on_the_thread_count(tmp_path, recipe):
    rng = np.random.default_rng(0)
    # above MIN_LOSSY_SIZE, so the lossy recipes really prune / cluster / quantize
    tensors = {f"layer{i}.weight": rng.standard_normal((96, 64 + i)).astype(np.float32)
               for i in range(6)}
    tensors["layer0.bias"] = rng.standard_normal(64).astype(np.float32)
    tensors["ids"] = np.arange(10, dtype=np.int64)
    blobs = []
    for threads in (1, 2, 3):
        path = tmp_path / f"t{threads}.wcodec"
        seen = []
        write_tensors(tensors, path, recipe, progress=lambda n, b: seen.append(n), threads=threads)
        assert seen == list(tensors)
        blobs.append(path.read_bytes())
    assert blobs[0] == blobs[1] == blobs[2]


def test_encode_errors_name_the_tensor_and_leave_no_file(tmp_path):
    tensors = {f"t{i}": np.ones((4, 4), np.float32) for i in range(8)}
    tensors["t5"] = np.ones((1,) * 33, np.float32)  # more dimensions than a file holds
    for threads in (1, 3):
        with pytest.raises(InputError, match="t5: 33 dimensions"):
            write_tensors(tensors, tmp_path / "x.wcodec", "lossless", threads=threads)
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="threads"):
        wcodec.save_file(tensors, tmp_path / "x.wcodec", threads=0)


@pytest.mark.parametrize("threads", [1, 3])
def test_write_errors_are_those_of_one_thread(tmp_path, threads):
    ok = np.ones((8, 8), np.float32)
    seen = []
    items = [("t0", ok), ("t1", np.ones((1,) * 33, np.float32)), ("t2", ok), ("t3", "not an array")]
    with pytest.raises(InputError, match="t1: 33 dimensions"):
        write_tensors(items, tmp_path / "x.wcodec", progress=lambda n, b: seen.append(n),
                      threads=threads)
    assert seen == ["t0"]
    dup = [("a", ok), ("b", ok), ("a", np.ones((1,) * 33, np.float32))]
    with pytest.raises(InputError, match="duplicate tensor name 'a'"):
        write_tensors(dup, tmp_path / "x.wcodec", threads=threads)
    assert list(tmp_path.iterdir()) == []


def test_add_encoded(tmp_path):
    p = Pipeline([{"id": "raw"}])
    with Writer(tmp_path / "e.wcodec") as w:
        w.add_encoded(encode_tensor("a", np.arange(3, dtype=np.int16), p))
        with pytest.raises(InputError, match="duplicate"):
            w.add_encoded(encode_tensor("a", np.arange(3, dtype=np.int16), p))
        with pytest.raises(InputError, match="encode_tensor"):
            w.add_encoded(("b", np.arange(3)))
    assert np.array_equal(wcodec.load_file(tmp_path / "e.wcodec")["a"], np.arange(3))
    assert isinstance(encode_tensor("b", np.zeros(2, np.float32), p), EncodedTensor)
