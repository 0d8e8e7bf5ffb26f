"""wcodec: compact, checksummed storage of neural-network weights with
composable codecs (see spec/FORMAT.md)."""
from . import codecs  # noqa: F401  (registers the built-in codecs)
from .api import __version__, load_file, open, save_file
from .container import Reader, TensorInfo, Writer
from .errors import (ChecksumError, ConfigError, FormatError, InputError, LimitExceeded,
                     TruncatedError, UnknownCodec, UnsupportedVersion, WcodecError)
from .pipeline import Pipeline
from .recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "__version__", "save_file", "load_file", "open", "Reader", "Writer", "TensorInfo",
    "Pipeline", "Recipe", "RECIPES", "get_recipe",
    "WcodecError", "FormatError", "TruncatedError", "ChecksumError", "UnsupportedVersion",
    "LimitExceeded", "UnknownCodec", "ConfigError", "InputError",
]
