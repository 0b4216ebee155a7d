"""Command-line plumbing shared by the converter scripts: one-line errors, tracebacks only with --debug."""
from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def use_checkout() -> None:
    """Import styleclip_jax from this checkout when it is not installed (without importing it yet)."""
    import importlib.util

    if importlib.util.find_spec("styleclip_jax") is None:
        sys.path.insert(0, str(REPO))


class Parser(argparse.ArgumentParser):
    """argparse with ``--debug``, no prefix abbreviations, and ``error: <flag>: <what>`` on one line."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)
        self.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run(work, args, src) -> int:
    """Call ``work(args)``; print any error as one line naming ``src`` and return 1 (re-raise with --debug)."""
    try:
        return work(args) or 0
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - every error becomes one line; --debug shows the traceback
        if args.debug:
            raise
        from styleclip_jax.errors import StyleClipError

        msg = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, (StyleClipError, OSError, ImportError)):
            msg = f"unexpected {type(e).__name__}: {msg} (rerun with --debug for the traceback)"
        if str(src) not in msg:
            msg = f"{src}: {msg}"
        print(f"error: {msg}", file=sys.stderr)
        return 1
