"""Speed and size of the canonical Huffman kernel (wcodec.kernels.huffman).

For each synthetic stream (quantised-weight-like distributions) prints:
symbols, alphabet, order-0 entropy (bits/symbol), the chosen max code
length and lane count, coded size relative to the entropy bound (whole
stream, and payload only), header bytes, encode and decode throughput
(best of ``--repeat`` runs on one core, from wall-clock time and, in
brackets, from the process's CPU time, which is steadier on a shared
machine; plus wall-clock decode with ``--threads`` if > 1), and the bitarray
reference decoder's throughput on the first stream for scale.

    python bench/kernel_huffman_speed.py [--repeat 7] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from wcodec.kernels import huffman as hf  # noqa: E402


def best_of(repeat, fn):
    """(best wall seconds, best CPU seconds of this process, last result)."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu, out


def streams(sizes, seed=0):
    rng = np.random.default_rng(seed)
    for n in sizes:
        # 4-bit quantised gaussian weights: 16 symbols, ~3 bits/symbol
        yield ("gauss16", n, 16,
               np.clip(np.round(rng.normal(7.5, 1.9, n)), 0, 15).astype(np.uint8))
        # int8 quantised gaussian weights: 256 symbols, ~5.6 bits/symbol
        yield ("gauss256", n, 256,
               np.clip(np.round(rng.normal(128, 12, n)), 0, 255).astype(np.uint8))
        # heavy-tailed int8 (laplace): length limit matters, ~2.5 bits/symbol
        yield ("laplace256", n, 256,
               np.clip(np.round(rng.laplace(128, 1.2, n)), 0, 255).astype(np.uint8))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1M-symbol streams only")
    ap.add_argument("--sizes", type=str, default=None,
                    help="comma-separated stream lengths (default 1048576,4194304)")
    args = ap.parse_args(argv)
    sizes = [1 << 20] if args.quick else [1 << 20, 1 << 22]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]

    hdr = (f"{'stream':<11}{'symbols':>9}{'H b/s':>7}{'maxlen':>7}{'lanes':>7}"
           f"{'size/H':>8}{'pay/H':>8}{'hdr B':>7}{'enc M/s (cpu)':>15}{'dec M/s (cpu)':>15}")
    if args.threads > 1:
        hdr += f"{'dec M/s x' + str(args.threads):>13}"
    print(hdr)
    print("-" * len(hdr))
    first = None
    for name, n, alpha, sym in streams(sizes):
        bound = hf.order0_entropy_bits(sym)
        te, tec, buf = best_of(max(1, args.repeat // 2), lambda: hf.encode(sym, alpha))
        h = hf.parse_header(buf, n)
        td, tdc, out = best_of(args.repeat, lambda: hf.decode(buf, n))
        if not np.array_equal(out, sym):
            raise SystemExit(f"{name}: round trip failed")
        line = (f"{name:<11}{n:>9}{bound / n:>7.3f}{h.max_len:>7}{h.lanes:>7}"
                f"{len(buf) * 8 / bound:>8.4f}{h.payload.size * 8 / bound:>8.4f}"
                f"{len(buf) - h.payload.size:>7}"
                f"{n / te / 1e6:>8.1f} ({n / max(tec, 1e-9) / 1e6:>4.0f})"
                f"{n / td / 1e6:>8.1f} ({n / max(tdc, 1e-9) / 1e6:>4.0f})")
        if args.threads > 1:
            tt, _, out = best_of(args.repeat, lambda: hf.decode(buf, n, threads=args.threads))
            assert np.array_equal(out, sym)
            line += f"{n / tt / 1e6:>13.1f}"
        print(line, flush=True)
        if first is None:
            first = (buf, n)
    buf, n = first
    tr, _, _ = best_of(1, lambda: hf.decode_reference(buf, n))
    print(f"\nreference decoder (bitarray, per lane) on the first stream: {n / tr / 1e6:.1f} M/s")
    print(f"size/H: whole stream vs order-0 entropy bound; pay/H: lane bitstreams only; "
          f"hdr B: header incl. code table and lane table")


if __name__ == "__main__":
    main()
