"""The ``wcodec`` command line (also ``python -m wcodec``).

    wcodec pack MODEL.safetensors -o MODEL.wcodec [--recipe NAME|FILE.toml]
    wcodec unpack MODEL.wcodec -o MODEL.safetensors|.pt|.npz
    wcodec info MODEL.wcodec [--json]
    wcodec verify MODEL.wcodec
    wcodec bench [ARGS...]

Exit status: 0 success; 1 a corrupt or unreadable file, or a failed verify;
2 bad usage or unusable input; 130 interrupted (no partial output is left).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from typing import Any, Sequence

from . import __version__
from .codecs.base import codec_class
from .container import Reader
from .errors import FormatError, InputError, UnknownCodec, WcodecError
from .parallel import MAX_THREADS, check_threads
from .recipes import RECIPES, get_recipe

PROG = "wcodec"

# stats columns shown by ``info``, in this order; other stats follow by name
KNOWN_STATS = ["pruned", "sparsity", "clusters", "levels", "entropy_bpw",
               "false_positives", "false_positive_rate", "max_error"]

# CLI knob -> codec option name
KNOBS = {"sparsity": "sparsity", "bits": "bits", "group_size": "group_size"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        sys.stderr.write(f"{PROG}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


# ------------------------------------------------------------------ helpers


def human(n: float) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 3.2 MiB..."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _number(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


def codec_text(config: dict[str, Any]) -> str:
    """``cast(float16)``, ``bytegroup``, ``quantize(bits=4,group_size=64)``:
    the codec id with the options that differ from their defaults."""
    cid = str(config.get("id"))
    options = {k: v for k, v in config.items() if k != "id"}
    try:
        params = codec_class(cid).params
        shown = {k: v for k, v in options.items() if k not in params or params[k].default != v}
        single = len(params) == 1
    except UnknownCodec:
        shown, single = options, False
    if not shown:
        return cid
    if single and len(shown) == 1:
        return f"{cid}({next(iter(shown.values()))})"
    return cid + "(" + ",".join(f"{k}={v}" for k, v in shown.items()) + ")"


def pipeline_text(pipeline: list[dict[str, Any]]) -> str:
    return "+".join(codec_text(c) for c in pipeline)


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "()"


class Progress:
    """A tqdm bar over bytes on stderr; silent when stderr is not a terminal,
    with --quiet, or when tqdm is missing."""

    def __init__(self, desc: str, quiet: bool):
        self.desc = desc
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=self.desc, leave=False, file=sys.stderr, dynamic_ncols=True)

    def __call__(self, name: str, nbytes: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name if len(name) <= 40 else "..." + name[-37:],
                                     refresh=False)
            self.bar.update(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _say(args, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _warn(text: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {text}\n")


def _metadata_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _thread_count(text: str) -> int:
    try:
        return check_threads(int(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_THREADS}, "
                                         f"got {text!r}") from None


def _threads_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-j", "--threads", type=_thread_count, metavar="N",
                        help=f"tensors {what} at a time (default: the CPUs available, at "
                        "most 4; the output does not depend on it)")


# ------------------------------------------------------------------ commands


def cmd_pack(args) -> int:
    from .formats import pack_file

    src = args.input
    dst = args.output or os.path.splitext(src)[0] + ".wcodec"
    recipe = get_recipe(args.recipe)
    options = {KNOBS[k]: getattr(args, k) for k in KNOBS if getattr(args, k) is not None}
    for key in options:
        if not any(key in codec_class(c["id"]).params for r in recipe.rules for c in r.pipeline):
            _warn(f"--{key.replace('_', '-')} has no effect: recipe {recipe.name!r} has no "
                  f"codec with a {key!r} option")
    metadata = dict(args.metadata or [])
    bar = Progress("pack", args.quiet)
    try:
        result = pack_file(src, dst, recipe, metadata, options=options, progress=bar,
                           on_start=bar.start, threads=args.threads)
    finally:
        bar.close()
    _say(args, f"packed {result.tensors} tensors: {src} {human(result.input_bytes)} -> {dst} "
               f"{human(result.output_bytes)} ({result.ratio:.2f}x) in {result.seconds:.2f} s")
    return 0


def cmd_unpack(args) -> int:
    from .formats import unpack_file

    bar = Progress("unpack", args.quiet)
    try:
        result = unpack_file(args.input, args.output, progress=bar, on_start=bar.start)
    finally:
        bar.close()
    _say(args, f"unpacked {result.tensors} tensors: {args.input} {human(result.input_bytes)} -> "
               f"{args.output} {human(result.output_bytes)} in {result.seconds:.2f} s")
    return 0


def file_info(path: str) -> dict[str, Any]:
    """Everything ``wcodec info`` shows, as a JSON-ready dict."""
    with Reader(path) as reader:
        file_bytes = os.path.getsize(path)
        tensors = []
        for info in reader.infos():
            stats = dict(info.stats)
            if "entropy_bits" in stats:  # order-0 bound of the coded symbols, per weight
                bits = stats.pop("entropy_bits")
                stats["entropy_bpw"] = bits / info.numel if info.numel else 0.0
            tensors.append({
                "name": info.name, "shape": list(info.shape), "dtype": info.dtype,
                "pipeline": info.pipeline, "pipeline_text": pipeline_text(info.pipeline),
                "numel": info.numel, "decoded_bytes": info.nbytes,
                "stored_bytes": info.stored_bytes, "bits_per_weight": info.bits_per_weight,
                "streams": len(info.streams), "stats": stats,
            })
        numel = sum(t["numel"] for t in tensors)
        decoded = sum(t["decoded_bytes"] for t in tensors)
        stored = sum(t["stored_bytes"] for t in tensors)
        return {
            "file": path,
            "format_version": "%d.%d" % reader.version,
            "file_bytes": file_bytes,
            "metadata": reader.metadata(),
            "tensors": tensors,
            "totals": {
                "tensors": len(tensors), "numel": numel, "decoded_bytes": decoded,
                "stored_bytes": stored, "file_bytes": file_bytes,
                "bits_per_weight": 8.0 * stored / numel if numel else 0.0,
                "ratio": decoded / stored if stored else 0.0,
                "file_ratio": decoded / file_bytes if file_bytes else 0.0,
            },
        }


def stats_columns(tensors: list[dict[str, Any]]) -> list[str]:
    present = {k for t in tensors for k in t["stats"]}
    return [k for k in KNOWN_STATS if k in present] + sorted(present - set(KNOWN_STATS))


def format_table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def cmd_info(args) -> int:
    data = file_info(args.file)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    t = data["totals"]
    print(f"file:     {data['file']} ({human(data['file_bytes'])}, wcodec format "
          f"{data['format_version']})")
    if data["metadata"]:
        print("metadata:")
        for k, v in data["metadata"].items():
            print(f"  {k}: {v}")
    else:
        print("metadata: (none)")
    if data["tensors"]:
        stats = stats_columns(data["tensors"])
        rows = [["name", "shape", "dtype", "pipeline", "stored", "bits/w"] + stats]
        for x in data["tensors"]:
            rows.append([x["name"], shape_text(x["shape"]), x["dtype"], x["pipeline_text"],
                         human(x["stored_bytes"]), f"{x['bits_per_weight']:.2f}"]
                        + [_number(x["stats"][k]) if k in x["stats"] else "-" for k in stats])
        print()
        for line in format_table(rows, {4, 5} | set(range(6, 6 + len(stats)))):
            print(line)
        print()
    print(f"total:    {t['tensors']} tensors, {t['numel']:,} weights, "
          f"{human(t['decoded_bytes'])} decoded -> {human(t['stored_bytes'])} stored "
          f"({t['ratio']:.2f}x, {t['bits_per_weight']:.2f} bits/weight); file "
          f"{human(t['file_bytes'])} ({t['file_ratio']:.2f}x)")
    return 0


def cmd_verify(args) -> int:
    bar = Progress("verify", args.quiet)
    try:
        with Reader(args.file) as reader:
            bar.start(sum(info.nbytes for info in reader.infos()))
            problems = reader.verify(progress=bar, threads=args.threads)
            count = len(reader)
    finally:
        bar.close()
    if problems:
        for p in problems:
            print(f"{args.file}: {p}")
        sys.stderr.write(f"{PROG}: error: {args.file}: verification failed "
                         f"({len(problems)} problem{'s' if len(problems) != 1 else ''})\n")
        return 1
    _say(args, f"OK {args.file}: {count} tensors, checksums, decoding and padding verified")
    return 0


def _find_bench():
    """The ``bench`` package's ``__main__`` (importable, or next to the wcodec
    package in a source checkout), or None."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for extra in ([], [root]):
        added = [p for p in extra if p not in sys.path]
        sys.path[:0] = added
        try:
            if importlib.util.find_spec("bench.__main__") is not None:
                return True
        except (ImportError, ValueError):
            pass
        for p in added:
            sys.path.remove(p)
    return None


def cmd_bench(argv: list[str]) -> int:
    import runpy

    if argv[:1] in (["-h"], ["--help"]) and not _find_bench():
        print(f"usage: {PROG} bench [ARGS...]\n\nRuns the benchmark suite (python -m bench) "
              "of a wcodec source checkout, passing ARGS on.")
        return 0
    if not _find_bench():
        sys.stderr.write(f"{PROG}: error: no benchmark suite found: 'wcodec bench' runs "
                         "'python -m bench' from a wcodec source checkout (the bench/ folder "
                         "with a __main__.py is not installed with the package)\n")
        return 2
    saved = sys.argv
    sys.argv = [f"{PROG} bench"] + list(argv)
    try:
        runpy.run_module("bench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{code}\n")
        return 1
    finally:
        sys.argv = saved
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Compact, checksummed storage of neural-network "
                     "weights with composable codecs.",
                     epilog="exit status: 0 ok, 1 corrupt file or failed verify, 2 bad usage "
                     "or input, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    recipes = ", ".join(f"{n}" for n in RECIPES)
    p = sub.add_parser("pack", help="encode a .safetensors/.pt/.pth/.bin/.npz file into .wcodec",
                       description="Encode every tensor of a weight file into a .wcodec file, "
                       "a few tensors at a time (-j), written in their order. Inputs: "
                       ".safetensors, .pt/.pth/.bin (PyTorch state dicts, loaded with "
                       "weights_only=True), .npz. The input's safetensors "
                       "__metadata__ is kept; wcodec.recipe and wcodec.source are recorded.")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="the .wcodec file to write (default: INPUT with a .wcodec extension)")
    p.add_argument("-r", "--recipe", default="lossless", metavar="NAME|FILE",
                   help=f"built-in recipe ({recipes}) or a recipe .toml file "
                   "(default: lossless)")
    p.add_argument("-m", "--metadata", metavar="KEY=VALUE", nargs="+", action="extend",
                   type=_metadata_item, help="add metadata entries to the file")
    p.add_argument("--sparsity", type=float, metavar="FLOAT",
                   help="set the 'sparsity' option of the recipe's codecs that have one")
    p.add_argument("--bits", type=int, metavar="INT",
                   help="set the 'bits' option of the recipe's codecs that have one")
    p.add_argument("--group-size", dest="group_size", type=int, metavar="INT",
                   help="set the 'group_size' option of the recipe's codecs that have one")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary line")
    _threads_option(p, "encoded")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("unpack", help="decode a .wcodec file to .safetensors/.pt/.npz",
                       description="Decode every tensor of a .wcodec file into a weight file "
                       "chosen by the output extension: .safetensors (metadata kept, less "
                       "wcodec.* keys), .pt/.pth/.bin (torch.save of a dict of tensors), or "
                       ".npz. bfloat16 stays bfloat16 in .safetensors and .pt; numpy has no "
                       "bfloat16, so in .npz bfloat16 tensors are stored as their uint16 bit "
                       "patterns.")
    p.add_argument("input", metavar="INPUT.wcodec")
    p.add_argument("-o", "--output", metavar="OUTPUT", required=True,
                   help="output file: .safetensors, .pt, .pth, .bin or .npz (bfloat16 as "
                   "uint16 bits in .npz)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary line")
    p.set_defaults(func=cmd_unpack)

    p = sub.add_parser("info", help="show the header, metadata and per-tensor table",
                       description="Show the format version, metadata and, for every tensor, "
                       "its shape, dtype, codec pipeline, stored size, bits per weight and "
                       "codec statistics, then totals and compression ratios.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("verify", help="check checksums, decode every tensor, check padding",
                       description="Check every checksum, decode every tensor and check the "
                       "padding bytes. Prints OK, or each problem and exits with status 1.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no OK line")
    _threads_option(p, "decoded")
    p.set_defaults(func=cmd_verify)

    sub.add_parser("bench", help="run the benchmark suite of a source checkout (python -m bench)",
                   add_help=False)
    return parser


def _exit_code(exc: WcodecError) -> int:
    return 1 if isinstance(exc, (FormatError, UnknownCodec)) else 2


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("WCODEC_DEBUG"))
    try:
        if argv[:1] == ["bench"]:
            return cmd_bench(argv[1:])
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return args.func(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        try:  # the reader went away (wcodec info | head): stay quiet
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except WcodecError as exc:
        if debug:
            raise
        _error(str(exc))
        return _exit_code(exc)
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return 2
    except MemoryError:
        _error("out of memory")
        return 1
    except Exception as exc:  # a bug: still no traceback unless WCODEC_DEBUG is set
        if debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (this is a bug; set "
               "WCODEC_DEBUG=1 to see the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
