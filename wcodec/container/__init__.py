"""The .wcodec container: a streaming writer and a lazy, validating reader."""
from .reader import Reader, TensorInfo
from .writer import Writer

__all__ = ["Reader", "TensorInfo", "Writer"]
