"""The package's error types: one base class, so that a command line can report any of them in one line.

Every message names the file or flag at fault and says what was expected. `main.py` and the scripts in
`checkpoints_convert/` print ``error: <message>`` for a `StyleClipError` and exit non-zero.
"""
from __future__ import annotations


class StyleClipError(Exception):
    """Base class of every error the package raises on bad input (files, flags, prompts)."""


class ConfigError(StyleClipError, ValueError):
    """A configuration value (a --config.* flag) is invalid; the message names the flag."""


class InputError(StyleClipError, ValueError):
    """An input file (images, latents, statistics, fs3) is missing, unreadable or of the wrong shape."""


class CheckpointError(StyleClipError):
    """Base class of every error raised while reading or writing checkpoints."""


class CheckpointFormatError(CheckpointError, ValueError):
    """A checkpoint file or directory is missing parts, corrupt, or not in the expected format."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle asked for a global (class or function) outside the loader's allow-list, or declared more
    data than it holds. Raised before anything from the file is imported, called or allocated."""


class CLIPLoadError(StyleClipError, RuntimeError):
    """The CLIP model or its tokenizer could not be found or loaded."""


class CLIPTokenError(StyleClipError, ValueError):
    """A prompt contains a word the tokenizer's vocabulary cannot represent."""
