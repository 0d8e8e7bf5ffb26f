"""Speed of the Bloomier (binary fuse) kernel.

Prints: build time for N keys (default 1M), query throughput over P positions
(default 10M), cells per key, and murmur3_32 throughput.  Times are the best
of ``--repeat`` runs on one core (numpy does not multithread these ops).

    python bench/kernel_bloomier_speed.py [--keys 1000000] [--positions 10000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from wcodec.kernels import fuse  # noqa: E402
from wcodec.kernels.murmur3 import murmur3_32  # noqa: E402


def best_of(repeat, fn):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--positions", type=int, default=10_000_000)
    ap.add_argument("--value-bits", type=int, default=4)
    ap.add_argument("--density", type=float, default=0.1,
                    help="fraction of nonzero positions (keys are drawn from keys/density positions)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(12345)
    n = args.keys
    universe = max(n, int(n / args.density))
    keys = np.sort(rng.choice(universe, size=n, replace=False)).astype(np.uint64)
    vals = rng.integers(1, 2**args.value_bits, size=n).astype(np.uint32)

    t_build, table = best_of(args.repeat, lambda: fuse.build(keys, vals, args.value_bits))
    assert np.array_equal(fuse.query(table, keys), vals.astype(table.cells.dtype))
    blob = fuse.serialize(table)
    t_ser, _ = best_of(args.repeat, lambda: fuse.serialize(table))
    t_de, _ = best_of(args.repeat, lambda: fuse.deserialize(blob))

    pos = np.arange(args.positions, dtype=np.uint64)
    t_q, _ = best_of(args.repeat, lambda: fuse.query(table, pos))
    t_mm, _ = best_of(args.repeat, lambda: murmur3_32(pos, 7))

    print(f"numpy {np.__version__}, value_bits={args.value_bits}")
    print(f"build      {n:>11,} keys      {t_build:8.3f} s   ({n / t_build / 1e6:6.2f} M keys/s)  seed used {table.seed}")
    print(f"query      {args.positions:>11,} positions {t_q:8.3f} s   ({args.positions / t_q / 1e6:6.1f} M positions/s)")
    print(f"murmur3_32 {args.positions:>11,} uint64s   {t_mm:8.3f} s   ({args.positions / t_mm / 1e6:6.1f} M keys/s)")
    print(f"cells/key  {table.array_length / max(n, 1):.4f}   (segment length 2^{table.segment_length_log2}, "
          f"{table.segment_count} segments + 2)")
    print(f"bits/key   {8 * len(blob) / max(n, 1):.3f}   ({len(blob):,} bytes serialized; "
          f"serialize {t_ser * 1e3:.1f} ms, deserialize {t_de * 1e3:.1f} ms)")
    rates = ", ".join(f"t={t}: {fuse.false_positive_rate(t, k):.4f}"
                      for k in (4, 16) for t in (4, 6, 8) if k <= 2**t)
    print(f"false-positive rate (K=4 then K=16 values incl. zero) {rates}")

if __name__ == "__main__":
    main()
