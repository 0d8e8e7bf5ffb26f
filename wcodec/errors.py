"""The wcodec exception hierarchy: every problem with a file, a config or an
argument raises a subclass of :class:`WcodecError`."""


class WcodecError(Exception):
    """Base class of every error wcodec raises on purpose."""


class FormatError(WcodecError):
    """The bytes are not a valid wcodec container or codec stream."""


class TruncatedError(FormatError):
    """The file or stream ends before the data it declares."""


class ChecksumError(FormatError):
    """A stored checksum does not match the bytes read."""


class UnsupportedVersion(FormatError):
    """The file was written by a format version this reader cannot read."""


class LimitExceeded(FormatError):
    """A declared size is above a safety limit (decompression bomb guard)."""


class UnknownCodec(WcodecError):
    """A pipeline names a codec id that is not registered."""


class ConfigError(WcodecError):
    """A codec, pipeline or recipe configuration is invalid."""


class InputError(WcodecError):
    """An argument given by the caller is unusable (wrong type, missing file...)."""
