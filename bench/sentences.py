"""Real English sentences, offline: split out of the Python documentation that
ships with the interpreter (``pydoc_data.topics``, the text of ``help()``) and
the docstrings of standard-library modules, classes and functions.

Deterministic: sources are read in a fixed order, sentences are normalised,
deduplicated, filtered (5..40 words, mostly words, no code), and the selection
is the ``n`` sentences with the smallest SHA-1 digest (a fixed pseudo-random
sample across all sources)."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import warnings

# standard-library modules whose docstrings are read (imported without side effects)
MODULES = ("os", "os.path", "sys", "re", "json", "collections", "itertools", "functools",
           "string", "textwrap", "datetime", "calendar", "decimal", "fractions", "random",
           "statistics", "math", "pathlib", "shutil", "tempfile", "glob", "fnmatch", "csv",
           "configparser", "logging", "argparse", "subprocess", "threading", "queue",
           "heapq", "bisect", "array", "copy", "pprint", "enum", "dataclasses", "typing",
           "abc", "contextlib", "inspect", "io", "zipfile", "tarfile", "gzip", "bz2", "lzma",
           "hashlib", "hmac", "secrets", "base64", "binascii", "struct", "codecs", "unicodedata",
           "difflib", "email", "email.message", "smtplib", "http.client", "urllib.parse",
           "urllib.request", "html", "html.parser", "xml.dom.minidom", "xml.etree.ElementTree",
           "socket", "selectors", "asyncio", "concurrent.futures", "multiprocessing", "sched",
           "timeit", "trace", "traceback", "warnings", "weakref", "gc", "pickle", "shelve",
           "sqlite3", "zlib", "locale", "gettext", "operator", "numbers", "cmath", "ipaddress",
           "uuid", "platform", "doctest", "unittest", "pdb", "profile", "pstats", "ast",
           "tokenize", "dis", "importlib", "pkgutil", "zipimport", "signal", "mmap", "ftplib",
           "imaplib", "poplib", "mailbox", "mimetypes", "wave", "colorsys", "shlex", "cmd",
           "code", "filecmp", "fileinput", "linecache", "reprlib", "graphlib", "plistlib",
           "netrc", "getpass", "curses", "optparse", "types", "stat")

_ABBREV = re.compile(r"\b(e\.g|i\.e|etc|vs|cf|Mr|Mrs|Dr|St|No)\.", re.I)
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z])")
_WORD = re.compile(r"^[A-Za-z][a-z]*(?:'[a-z]+)?[,;:.!?]?$")
_CODEISH = re.compile(r"(>>>|::|==|\(\)|\[\]|\{|\}|__|->|\\|`|\bdef\b|\bNone\b|\bself\b|/|=|\*|#|@)")


def split_sentences(text: str) -> list[str]:
    """Sentences of prose ``text``: paragraphs are split at blank lines, lines
    that look like code or tables (indented, or starting with ``>>>``) are
    dropped, lines are joined and split after ``.``/``!``/``?`` before a
    capital letter (not after common abbreviations)."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines()
                 if ln.strip() and not ln.startswith(("    ", "\t")) and not ln.lstrip().startswith(">>>")
                 and not set(ln.strip()) <= set("=-*+|# ")]
        if not lines:
            continue
        joined = " ".join(ln.strip() for ln in lines)
        joined = _ABBREV.sub(lambda m: m.group(0).replace(".", "\x00"), joined)
        for s in _SPLIT.split(joined):
            s = re.sub(r"\s+", " ", s.replace("\x00", ".")).strip()
            if s:
                out.append(s)
    return out


def is_prose(sentence: str, min_words: int = 5, max_words: int = 40) -> bool:
    """A plain English sentence: 5..40 words, starts with a capital letter,
    ends with a full stop/!/?, at least 80% of the tokens are ordinary words and
    nothing looks like code."""
    words = sentence.split()
    if not min_words <= len(words) <= max_words:
        return False
    if not sentence[0].isupper() or sentence[-1] not in ".!?":
        return False
    if _CODEISH.search(sentence):
        return False
    plain = sum(1 for w in words if _WORD.match(w.strip("()\"'")))
    return plain >= 0.8 * len(words)


def _docstrings() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_docstrings()


def _read_docstrings() -> list[str]:
    texts = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # not built on this interpreter
            continue
        texts.append(inspect.getdoc(mod) or "")
        for attr in sorted(vars(mod)):
            obj = getattr(mod, attr, None)
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
                texts.append(inspect.getdoc(obj) or "")
                if inspect.isclass(obj):
                    for meth in sorted(vars(obj)):
                        m = getattr(obj, meth, None)
                        if not meth.startswith("_") and callable(m):
                            texts.append(inspect.getdoc(m) or "")
    return texts


def corpus() -> list[str]:
    """Every distinct prose sentence found, in source order."""
    texts = []
    try:
        from pydoc_data.topics import topics
        texts += [topics[k] for k in sorted(topics)]
    except ImportError:
        pass
    texts += _docstrings()
    seen, out = set(), []
    for text in texts:
        for s in split_sentences(text):
            key = s.lower()
            if key not in seen and is_prose(s):
                seen.add(key)
                out.append(s)
    return out


def select(sentences: list[str], n: int) -> list[str]:
    """The ``n`` sentences with the smallest SHA-1 digests (deterministic sample)."""
    keyed = sorted(sentences, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    return keyed[:n]


def sentences(n: int = 500) -> list[str]:
    pool = corpus()
    if len(pool) < n:
        print(f"  note: only {len(pool)} sentences found (asked for {n})", flush=True)
    return select(pool, n)


if __name__ == "__main__":
    pool = corpus()
    print(len(pool), "sentences; sample:")
    for s in select(pool, 15):
        print(" -", s)
